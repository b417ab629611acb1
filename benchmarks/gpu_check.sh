#!/usr/bin/env bash
# One call on a lent GPU machine: are the CUDA kernels right, and how fast are they?
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine; results in $OUT (default ./gpu-check-out)
#   bash benchmarks/gpu_check.sh --dry-run  # anywhere: every step on the CPU with tiny sizes (the suite runs this)
#
# Steps, each under its own time limit, each writing its own files: the machine; the CUDA build; the
# CUDA tests (tests/test_cuda_kernels.py, junit XML); compute-sanitizer memcheck, racecheck and
# synccheck over the small scenes of benchmarks/cuda_scenes.py; the renderer table on the GPU; UV
# textures against cubes (benchmarks/uv_textures.py); one `reconstruct` training step of the paper's
# batch (benchmarks/reconstruct.py steps); style and dream `paper` steps (benchmarks/style.py,
# dream.py, bf16 and fp32). summary.json gathers
# every step's status, seconds and figures. The whole run is meant to end within 8 minutes on an
# H200. Wheels the machine lacks (trimesh) are installed from .wheels/ when it exists
# (pip download --no-deps -d .wheels trimesh, then carry .wheels).
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .wheels ] && ls .wheels/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/meshopt-site .wheels/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/meshopt-site"
fi
if [ "$DRY" = 1 ]; then
  DEVICE=cpu; STEPS=1; WARMUP=0; MESH=builtin:cube; PRESET=fast; SIZES="32"; MESHES="ico1280"; REPEATS=1
else
  DEVICE=cuda; STEPS=20; WARMUP=2; MESH=builtin:sphere:4; PRESET=paper; SIZES="64 256 512"; MESHES="ico1280 ico20480 ico81920 soup"; REPEATS=7
fi
STEPS_JSON="$OUT/steps.jsonl"
: > "$STEPS_JSON"

# step NAME LIMIT_S COMMAND...: runs COMMAND with its output in $OUT/NAME.log, appends its status
step() {
  local name=$1 limit=$2; shift 2
  local started=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  printf '{"step": "%s", "rc": %d, "seconds": %d}\n' "$name" "$rc" "$((SECONDS - started))" >> "$STEPS_JSON"
  echo "gpu_check: $name: exit $rc ($((SECONDS - started)) s)" >&2
  return 0
}

step machine 60 "$PY" -c "
import json, platform, torch
from meshopt_cli import precision
info = {'torch': torch.__version__, 'cuda': torch.version.cuda, 'gpus': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        'cpu': precision.cpu_model(), 'cpu_bf16_instructions': list(precision.cpu_bf16_instructions()), 'python': platform.python_version()}
print(json.dumps(info))"

if [ "$DRY" = 1 ]; then
  step build 300 "$PY" -c "from meshopt_cli.render import native; assert native.backend_for('cpu') is not None; print('cpu kernels ready')"
  step tests 600 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda_kernels.py -k "not compile" --junitxml="$OUT/tests.xml"
  step sanitizer-dry-run 300 "$PY" benchmarks/cuda_scenes.py --dry-run  # the scenes, without a sanitizer
else
  step build 300 "$PY" -c "
import time; t = time.time()
from meshopt_cli.render import native
assert native.backend_for('cuda') is not None, 'the CUDA kernels did not build'
print('cuda kernels ready in', round(time.time() - t, 1), 's')"
  step tests 300 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda_kernels.py -k "not compile" --junitxml="$OUT/tests.xml"
  SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1)
  for tool in memcheck racecheck synccheck; do
    if [ -n "$SANITIZER" ]; then
      step "sanitizer-$tool" 120 "$SANITIZER" --tool "$tool" --error-exitcode 3 "$PY" benchmarks/cuda_scenes.py
    else
      printf '{"step": "sanitizer-%s", "rc": 127, "seconds": 0, "note": "compute-sanitizer not found"}\n' "$tool" >> "$STEPS_JSON"
    fi
  done
fi
# shellcheck disable=SC2086
step renderer 180 "$PY" benchmarks/render.py --device "$DEVICE" --backends native --meshes $MESHES --sizes $SIZES --repeats "$REPEATS"
# on the GPU both formats (the speed-up is the point); in the dry run `auto`, which runs on any CPU
[ "$DRY" = 1 ] && PRECISIONS="auto" || PRECISIONS="bf16 fp32"
# UV texture images against cubes (issue 12's figure, here on the device); one reconstruct training step
if [ "$DRY" = 1 ]; then
  step uv-textures 120 "$PY" benchmarks/uv_textures.py --figures speed --device "$DEVICE" --repeats 1 --small
  step reconstruct-step 120 "$PY" benchmarks/reconstruct.py steps --device "$DEVICE" --batch 2 --size 16 --warmup 0 --repeat 1
else
  step uv-textures 120 "$PY" benchmarks/uv_textures.py --figures speed --device "$DEVICE" --repeats "$REPEATS"
  step reconstruct-step 120 "$PY" benchmarks/reconstruct.py steps --device "$DEVICE" --batch 64 --size 64
fi
for precision in $PRECISIONS; do
  step "style-$PRESET-$precision" 120 "$PY" benchmarks/style.py --preset "$PRESET" --device "$DEVICE" --mesh "$MESH" --steps "$STEPS" --warmup "$WARMUP" --precision "$precision"
  step "dream-$PRESET-$precision" 120 "$PY" benchmarks/dream.py --preset "$PRESET" --device "$DEVICE" --mesh "$MESH" --steps "$STEPS" --warmup "$WARMUP" --precision "$precision"
done

"$PY" - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines() if line.strip()]
for s in steps:
    log = out / f"{s['step']}.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    figures = [json.loads(l) for l in lines if l.startswith("{")]
    if figures:
        s["figures"] = figures
    s["tail"] = lines[-3:]
summary = {"steps": steps, "failed": [s["step"] for s in steps if s["rc"] != 0]}
(out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
print(json.dumps({"failed": summary["failed"], "steps": len(steps)}))
sys.exit(1 if summary["failed"] else 0)
EOF
