"""The memory budget: ``--max-memory SIZE``, what this machine has free, and what a job will need.

Every figure here is in **bytes**. A budget bounds the peak resident memory (RSS) of one meshopt
process — what ``/usr/bin/time -v`` reports and what the kernel's OOM killer sees — so it includes
the program itself (Python, torch and the kernels: :data:`PROCESS_BASELINE`), not only a job's
arrays. With ``--jobs N`` the budget is per worker process.

* :func:`parse_size` reads ``4G``, ``512M``, ``1.5GiB``, ``800000000`` (binary units: 1K = 1024).
* :func:`available_memory` is the least of ``MemAvailable`` (``/proc/meminfo``), the cgroup's
  limit minus its usage, and the address space ``RLIMIT_AS`` leaves (``ulimit -v``); without
  ``/proc`` it falls back to ``os.sysconf``. :func:`default_budget` takes :data:`DEFAULT_SHARE` of
  it (split among the workers), on top of what this process already holds.
* An :class:`Estimate` is a sum of named parts (``cubes``, ``frames``, ``backbone`` ...);
  :func:`check` turns one over budget into :class:`OverBudget`, a one-line ``ValueError`` naming
  the figure, the largest part and the flags that shrink it.
* :func:`cap_jobs` limits ``--jobs`` to the cores this process may use and to what the memory
  holds, with a one-line warning.

The estimates (:func:`render_estimate`, :func:`textured_estimate`, :func:`fit_estimate`) count the
arrays each stage allocates from the sizes of the inputs and settings, before any is allocated;
``tests/test_memory.py`` checks them against measured peaks. This module imports neither torch nor
numpy, so that the CLI may use it before either loads.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

#: Share of the available memory a run may plan to use by default (the rest is left to the system,
#: the page cache and other programs).
DEFAULT_SHARE = 0.6
#: Resident memory of a meshopt process with torch imported and the kernels loaded, before any job
#: (0.72–0.76 GB measured with torch 2.x on Linux; a worker process holds the same).
PROCESS_BASELINE = 800 * MIB
#: A budget below this cannot run anything: the program alone needs about this much.
MINIMUM_BUDGET = PROCESS_BASELINE + 64 * MIB

_UNITS = {"": 1, "b": 1, "k": KIB, "m": MIB, "g": GIB, "t": 1 << 40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"4G"`` -> 4294967296: a number with an optional unit K, M, G or T (binary: 1K = 1024;
    ``KB``/``KiB`` alike), no unit meaning bytes. Raises ``ValueError`` with the reason."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"must be a size such as 4G, 512M or 1.5G, got {text!r}")
    number, unit = float(match.group(1)), match.group(2).lower()
    value = number * _UNITS[unit]
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"must be a positive size such as 4G or 512M, got {text!r}")
    return int(value)


def format_size(n: float) -> str:
    """Bytes as a short figure in the units ``--max-memory`` takes: ``15.6G``, ``512M``, ``3.2K``."""
    for unit, scale in (("T", 1 << 40), ("G", GIB), ("M", MIB), ("K", KIB)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return f"{int(n)}B"


# ---------------------------------------------------------------- what the machine has


def _proc_field(path: str, key: str) -> int | None:
    """The ``key: N kB`` line of a /proc file in bytes, None when it cannot be read."""
    try:
        with open(path, encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * KIB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _meminfo(key: str) -> int | None:
    return _proc_field("/proc/meminfo", key)


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_free() -> int | None:
    """The cgroup's memory limit minus its usage (v2, else v1), None without a limit."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:
            return max(0, limit - usage)
    return None


def process_status(key: str) -> int | None:
    """A ``VmRSS``/``VmHWM``/``VmSize`` line of ``/proc/self/status`` in bytes (None without /proc)."""
    return _proc_field("/proc/self/status", key)


def _address_space_free() -> int | None:
    """What ``RLIMIT_AS`` (``ulimit -v``) leaves this process to map, None without a limit."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    return max(0, soft - (process_status("VmSize") or 0))


def available_memory() -> tuple[int, str]:
    """``(bytes, where the figure comes from)``: the least of MemAvailable, the cgroup's free
    memory and the address space RLIMIT_AS leaves; ``os.sysconf``'s free pages without /proc."""
    found = []
    meminfo = _meminfo("MemAvailable")
    if meminfo is not None:
        found.append((meminfo, "MemAvailable"))
    cgroup = _cgroup_free()
    if cgroup is not None:
        found.append((cgroup, "the cgroup's limit"))
    address = _address_space_free()
    if address is not None:
        found.append((address, "ulimit -v"))
    if not found:
        try:
            found.append((os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free pages"))
        except (ValueError, OSError, AttributeError):
            found.append((4 * GIB, "a guess (no /proc, no sysconf)"))
    return min(found)


def current_rss() -> int:
    """This process's resident memory now (:data:`PROCESS_BASELINE` where /proc cannot say)."""
    return process_status("VmRSS") or PROCESS_BASELINE


def default_budget(workers: int = 1) -> int:
    """The budget of one process when ``--max-memory`` is not given: :data:`DEFAULT_SHARE` of the
    available memory split among ``workers``, plus the program's own :data:`PROCESS_BASELINE`
    (a worker, like this process, holds it already or will)."""
    free, _ = available_memory()
    return int(PROCESS_BASELINE + DEFAULT_SHARE * free / max(1, workers))


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask, else ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cap_jobs(jobs: int, inputs: int, budget: int | None, per_worker: int, on_gpus: int = 0) -> tuple[int, str | None]:
    """``(workers, warning or None)`` for ``--jobs jobs`` over ``inputs`` inputs: at most the inputs,
    the usable cores (or the GPUs, ``on_gpus`` > 0, where workers share them round robin: no cap
    then) and as many workers as the memory holds, each needing ``per_worker`` bytes (its program
    and its smallest job); ``budget`` is the ``--max-memory`` per worker (None: the default)."""
    workers = max(1, min(jobs, inputs))
    reasons = []
    if not on_gpus and workers > usable_cores():
        workers = usable_cores()
        reasons.append(f"this process may use {workers} CPU core(s)")
    free, source = available_memory()
    if budget is None:  # the default budgets share DEFAULT_SHARE of it
        free = int(free * DEFAULT_SHARE)
        need = per_worker
    else:
        need = max(per_worker, budget) if budget < per_worker else per_worker
    fits = max(1, int(free // max(1, need)))
    if workers > fits:
        workers = fits
        reasons.append(f"each worker needs about {format_size(need)} and {format_size(free)} is available ({source})")
    if workers < min(jobs, inputs):
        return workers, f"--jobs {jobs} capped to {workers}: " + "; ".join(reasons)
    return workers, None


# ---------------------------------------------------------------- estimates


@dataclass
class Estimate:
    """A job's peak resident memory as a sum of named parts (bytes each), and the flags that shrink
    which part (``flags``: part -> flag text, e.g. ``"cubes": "--texture-size"``)."""

    parts: dict[str, float] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(sum(self.parts.values()))

    def add(self, part: str, nbytes: float, flag: str | None = None) -> Estimate:
        self.parts[part] = self.parts.get(part, 0) + max(0.0, float(nbytes))
        if flag:
            self.flags[part] = flag
        return self

    def largest(self) -> tuple[str, float]:
        return max(self.parts.items(), key=lambda item: item[1])

    def as_dict(self) -> dict:
        """For metrics.json: the total and each part, in bytes."""
        return {"total": self.total, "parts": {k: int(v) for k, v in self.parts.items()}}


class OverBudget(ValueError):
    """A job whose estimated peak exceeds its memory budget; one line."""


def check(estimate: Estimate, budget: int, what: str) -> None:
    """Raise :class:`OverBudget` when ``estimate`` exceeds ``budget``: one line naming the figure,
    the largest part and the flags to change (the part's own flag, then ``--max-memory``)."""
    if estimate.total <= budget:
        return
    part, nbytes = estimate.largest()
    flag = estimate.flags.get(part)
    change = f"lower {flag} or raise --max-memory" if flag else "raise --max-memory"
    raise OverBudget(
        f"{what} needs about {format_size(estimate.total)} of memory (of which {part} {format_size(nbytes)}), "
        f"more than the budget of {format_size(budget)}: {change}"
    )


FLOAT = 4  # bytes of a float32
INDEX = 8  # bytes of an int64


def mesh_bytes(vertices: int, faces: int) -> float:
    """A loaded mesh as the commands hold it: numpy vertices [V, 3] float32 and faces [F, 3]
    int64, their torch copies, and the normalised vertices."""
    return vertices * 3 * FLOAT * 3 + faces * 3 * INDEX * 2


def obj_parse_bytes(file_size: int) -> float:
    """Peak of parsing an OBJ file of ``file_size`` bytes (the bytes themselves, the token arrays
    of :mod:`meshopt_cli.mesh.objparse`): about 3× the file, measured on 80 MB and 1 MB files."""
    return 3.0 * file_size


def cube_bytes(faces: int, texture_size: int) -> float:
    """Texture cubes [F, T, T, T, 3] float32."""
    return faces * texture_size**3 * 3 * FLOAT


def raster_bytes(batch: int, faces: int, vertices: int, image_size: int, anti_aliasing: bool = True) -> float:
    """One no-grad rasterization of ``batch`` views of a mesh (``faces`` before fill-back doubles
    them): screen vertices and faces, per-face light, the kernel's per-face records and tile bins,
    and the internal (2× with anti-aliasing) maps — face index, weights, depth, rgb, alpha and
    their flipped, pooled copies (about 60 bytes per internal pixel)."""
    rendered = 2 * faces  # fill_back
    internal = (2 * image_size if anti_aliasing else image_size) ** 2
    per_view = vertices * 3 * FLOAT * 4 + rendered * (9 * FLOAT * 2 + 3 * FLOAT) + rendered * 72 + internal * 60
    return batch * per_view + rendered * (3 * INDEX + 9 * FLOAT)  # the filled face list and world faces, once


def gif_bytes(frames: int, image_size: int) -> float:
    """Turntable frames [N, S, S, 3] uint8, their Pillow copies (RGB, then palette) and the GIF."""
    return frames * image_size**2 * (3 + 3 + 1 + 1)


def turntable_estimate(
    vertices: int,
    faces: int,
    texture_size: int,
    frames: int,
    image_size: int,
    chunk: int,
    *,
    cubes_held: bool = True,
) -> Estimate:
    """A turntable rendered ``chunk`` frames at a time (:func:`meshopt_cli.turntable.render_views`):
    the cubes (when this call holds them: ``cubes_held``), a batch's contiguous copy of the cubes
    (``chunk`` > 1 only: one frame renders from the cubes themselves), the rasterization and the
    GIF."""
    estimate = Estimate()
    if cubes_held:
        estimate.add("texture cubes", cube_bytes(faces, texture_size), "--texture-size")
    if chunk > 1:
        estimate.add("texture cubes", chunk * cube_bytes(faces, texture_size), "--texture-size")
    estimate.add("rasterization", raster_bytes(chunk, faces, vertices, image_size), "--size")
    estimate.add("frames", gif_bytes(frames, image_size), "--frames or --size")
    return estimate


def frames_per_chunk(
    budget_left: float, vertices: int, faces: int, texture_size: int, frames: int, image_size: int, largest: int = 8
) -> int:
    """The most frames (up to ``largest``) a turntable may render at once within ``budget_left``
    bytes; 1 when even one frame at a time does not fit (the caller's check then refuses)."""
    for chunk in range(min(largest, max(1, frames)), 1, -1):
        if turntable_estimate(vertices, faces, texture_size, frames, image_size, chunk, cubes_held=False).total <= budget_left:
            return chunk
    return 1


def render_estimate(vertices: int, faces: int, texture_size: int, frames: int, image_size: int, chunk: int) -> Estimate:
    """``meshopt render`` of one mesh: the program, the mesh, and its turntable."""
    estimate = Estimate({"meshopt itself": PROCESS_BASELINE})
    estimate.add("mesh", mesh_bytes(vertices, faces))
    for part, nbytes in turntable_estimate(vertices, faces, texture_size, frames, image_size, chunk).parts.items():
        estimate.add(part, nbytes, {"texture cubes": "--texture-size", "rasterization": "--size"}.get(part, "--frames or --size"))
    return estimate


def backbone_activation_bytes(network: str, image_size: int, batch: int) -> float:
    """Activations a backbone keeps for the backward pass of ``batch`` views of ``image_size``²
    (float32; bf16 autocast keeps less, so this bounds it), with their gradients.

    VGG16 up to relu4_3 (style): per pixel of the input 64·2 + 128·2/4 + 256·3/16 + 512·3/64 =
    256 channels of conv output, each kept as conv output and ReLU output, plus the pools: ≈ 560
    floats per input pixel; GoogLeNet up to inception_5b (dream): its stem at 1/2–1/4 and the
    inception blocks at 1/8–1/32 ≈ 110 floats per input pixel. The backward pass holds a gradient
    as large as the largest activations: ×1.5."""
    per_pixel = {"vgg": 560, "googlenet": 110}[network]
    return 1.5 * batch * image_size**2 * per_pixel * FLOAT


def optimize_raster_bytes(batch: int, faces: int, vertices: int, image_size: int, texture_size: int) -> float:
    """One differentiable rendering of ``batch`` views for an optimization step: the forward
    rasterization, what autograd saves (screen faces, light, the maps), the backward's per-pixel
    lists and gradients (about twice the forward), and each view's contiguous copy of the cubes and
    its gradient."""
    forward = raster_bytes(batch, faces, vertices, image_size)
    cubes = cube_bytes(faces, texture_size)
    return 3 * forward + 2 * batch * cubes


def textured_estimate(
    network: str,
    vertices: int,
    faces: int,
    texture_size: int,
    batch_views: int,
    image_size: int,
    turntable: tuple[int, int],
    texture_pixels: int = 0,
) -> Estimate:
    """``meshopt style``/``dream`` of one mesh: the program, the network's weights, the mesh, the
    texture parameters (cubes, logits, their gradients and Adam's two moments: 6× the cubes; with
    ``texture_pixels`` > 0, ``--texture uv``: an image of that many pixels instead, 8× it for the same
    copies plus the mip pyramid of the image and of its gradient), a step's rendering and the
    backbone's activations, then the result's turntable (``turntable`` = (frames, size))."""
    estimate = Estimate({"meshopt itself": PROCESS_BASELINE})
    # weights (~30 MB), torchvision's import and the network's first forward pass: the default
    # style/dream runs on builtin:teapot peak 0.25-0.3 GB above the plain program (benchmarks/memory.py)
    estimate.add("network", 300 * MIB)
    estimate.add("mesh", mesh_bytes(vertices, faces) * 4)  # offsets, their gradient, two Adam moments
    if texture_pixels > 0:
        texture_size = 1  # the UV path rasterizes without cubes
        estimate.add("texture image", 8 * texture_pixels * 3 * FLOAT, "--texture-resolution")
    else:
        estimate.add("texture parameters", 6 * cube_bytes(faces, texture_size), "--texture-size")
    estimate.add(
        "rendered views",
        optimize_raster_bytes(batch_views, faces, vertices, image_size, texture_size),
        "--batch-views or --image-size",
    )
    estimate.add(
        "backbone activations", backbone_activation_bytes(network, image_size, batch_views), "--batch-views or --image-size"
    )
    frames, size = turntable
    estimate.add("frames", gif_bytes(frames, size))
    return estimate


def fit_estimate(
    target_vertices: int,
    target_faces: int,
    template_vertices: int,
    template_faces: int,
    settings,
    carve_image_size: int = 256,
) -> Estimate:
    """``meshopt fit`` of one target: the program, the target mesh, its silhouettes (training and
    held-out views, float32 at ``image_size`` and the evaluation size), rendered ``views`` at a time
    without gradients, a step's differentiable rendering of ``batch_views`` template views, and with
    ``carve_at`` the carve's masks at ``carve_image_size`` (:func:`carve_bytes`), with ``relax`` the
    final relaxation's at the same size (:func:`relax_bytes`)."""
    views = settings.views + settings.heldout_views
    estimate = Estimate({"meshopt itself": PROCESS_BASELINE})
    estimate.add("target mesh", mesh_bytes(target_vertices, target_faces))
    estimate.add(
        "target silhouettes",
        views * (settings.image_size**2 + settings.eval_image_size**2) * FLOAT * 2,
        "--views or --image-size",
    )
    estimate.add(
        "rendering the target",
        raster_bytes(min(views, 8), target_faces, target_vertices, max(settings.image_size, settings.eval_image_size)),
        "--image-size",
    )
    estimate.add(
        "rendered views",
        optimize_raster_bytes(settings.batch_views, template_faces, template_vertices, settings.image_size, 1),
        "--batch-views or --image-size",
    )
    if getattr(settings, "carve_at", 0) > 0:
        estimate.add(
            "carving",
            carve_bytes(settings.views, target_faces, target_vertices, template_faces, template_vertices, carve_image_size),
            "--carve-at 0",
        )
    if getattr(settings, "relax", False):
        estimate.add(
            "relaxing",
            relax_bytes(settings.views, target_faces, target_vertices, template_faces, template_vertices, carve_image_size),
            "--no-relax",
        )
    estimate.add("frames", gif_bytes(settings.turntable_frames, settings.turntable_size))
    return estimate


def relax_bytes(views: int, target_faces: int, target_vertices: int, faces: int, vertices: int, image_size: int) -> float:
    """The final relaxation of ``meshopt_cli.optimize.relax`` at ``image_size``: the target's binary
    masks of the ``views`` training cameras, the fitted and relaxed silhouettes, the face seen at
    each pixel before and after the move (int64 maps from face-index colour renders), the masks
    derived from them, the largest rasterization, and the sparse Cholesky factor of the free
    vertices (bounded here by a dense band of 64 neighbours per vertex). About 40 bytes per pixel
    of every view."""
    pixels = views * image_size**2
    maps = pixels * (1 + FLOAT * 2 + 2 + INDEX * 2 + 4)  # masks, renders (+ bools), two face maps, worse/right
    factor = vertices * 64 * FLOAT * 2
    return maps + face_map_render_bytes(views, target_faces, target_vertices, faces, vertices, image_size) + factor


def carve_bytes(views: int, target_faces: int, target_vertices: int, faces: int, vertices: int, image_size: int) -> float:
    """The carve of ``meshopt_cli.optimize.carve`` at ``image_size``: the target's binary masks of the
    ``views`` training cameras (rendered 16 at a time), the mask grown and its holes, the face seen
    at each pixel (an int64 map, from a face-index colour render) and the render without the
    flagged faces. About 30 bytes per pixel of every view, plus the largest rasterization."""
    pixels = views * image_size**2
    maps = pixels * (1 + FLOAT + 5 + INDEX * 2 + FLOAT * 2)  # masks, grown, holes, seen (+ rounding), renders
    return maps + face_map_render_bytes(views, target_faces, target_vertices, faces, vertices, image_size)


def face_map_render_bytes(
    views: int, target_faces: int, target_vertices: int, faces: int, vertices: int, image_size: int
) -> float:
    """What the carve's and the relaxation's renders hold at once, 16 views at a time: each face's
    index as its colour per view, and the larger of the target's and the mesh's rasterizations."""
    colours = min(views, 16) * 2 * faces * 3 * FLOAT
    raster = max(
        raster_bytes(min(views, 16), target_faces, target_vertices, image_size, anti_aliasing=False),
        raster_bytes(min(views, 16), faces, vertices, image_size, anti_aliasing=False),
    )
    return colours + raster
