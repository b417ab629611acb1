"""The `meshopt` command line (Typer): one function per command, options declared once below.

Each command function collects its flags and hands them to :func:`_invoke`, which imports the
command's module (``commands/<name>.py``, whose ``COMMAND`` describes it: see
:mod:`meshopt_cli.command`) only then, so that `meshopt --help` stays fast (torch is not imported).
A flag whose parameter is named like a field of the command's settings dataclass overrides it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, List, Literal, Optional

import typer
from typer.core import TyperGroup

from meshopt_cli import __version__, console
from meshopt_cli.defaults import DEFAULT_DISTANCE
from meshopt_cli.optimize.layer_names import GOOGLENET_LAYERS, googlenet_layer

# meshopt_cli.reconstruct.shapes.CLASSES, named here so that --help does not import numpy (a test keeps them equal)
PROCEDURAL_CLASSES = "box, ellipsoid, spindle, table, cross, car, airplane, chair, vase, assembly, pebble, stack"

# Typer's parse errors (a bad value for a typed option, an unknown flag) derive from this class.
_PARSE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _OneLineErrors(TyperGroup):
    """Parse errors as one ``meshopt: error:`` line (exit status 2), like every other usage error,
    instead of a usage box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            status = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _PARSE_ERROR as problem:
            context = getattr(problem, "ctx", None)
            if type(problem).__name__ == "NoArgsIsHelpError":  # `meshopt` alone: the help
                typer.echo(context.get_help())
            else:
                where = f" (see '{context.command_path} --help')" if context is not None else ""
                console.error(" ".join(problem.format_message().split()) + where)
            status = problem.exit_code
        except typer.Abort:  # Ctrl-C while Typer itself was reading
            console.error("interrupted")
            status = 130
        if not standalone_mode:
            return status
        sys.exit(status or 0)


def _flag_type(self, ctx):
    """No type column for flags that take no value (Typer 0.29 shows ``<bool>`` after --help, --png ...)."""
    if getattr(self, "is_flag", False) and not getattr(self, "count", False):
        return None
    return _option_type(self, ctx)


_option_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flag_type

app = typer.Typer(
    cls=_OneLineErrors,
    name="meshopt",
    help="Optimize 3D meshes through a differentiable mesh renderer (Neural 3D Mesh Renderer, Kato et al. 2018).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# help panels
FILES = "Inputs and outputs"
SETTINGS = "Settings"
OPTIMIZATION = "Optimization"
RENDERING = "Rendering"
BATCH = "Batch"
CLUSTER = "Cluster (Ray)"


def _device(value: str) -> str:
    """``--device``: auto, cpu, cuda or cuda:N (whether that device exists is checked before a run)."""
    text = value.strip().lower()
    if text in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", text):
        return text
    raise typer.BadParameter(f"must be auto, cpu, cuda or cuda:N, got {value!r}")


def _size(value: str) -> int:
    """``--max-memory``: 4G, 512M, 1.5G ... -> bytes (meshopt_cli.memory.parse_size)."""
    from meshopt_cli.memory import parse_size

    try:
        return parse_size(value)
    except ValueError as problem:
        raise typer.BadParameter(str(problem)) from None


def _layer(value: str) -> str:
    """``--layer``: a GoogLeNet block in the paper's or torchvision's spelling -> the paper's."""
    try:
        return googlenet_layer(value)
    except ValueError as problem:
        raise typer.BadParameter(str(problem)) from None


# ---------------------------------------------------------------- options every command shares
Out = Annotated[
    Path,
    typer.Option(
        "--out", "-o", rich_help_panel=FILES, help="Output folder; each input gets OUT/NAME/ (repeated names get -2, -3, ...)."
    ),
]
Name = Annotated[
    Optional[str], typer.Option(rich_help_panel=FILES, help="Folder name of the result of one input (default: from the input).")
]
Config = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        rich_help_panel=SETTINGS,
        help="TOML file of settings: overrides the preset, flags override it (may name its preset and hold [COMMAND] tables).",
    ),
]
Force = Annotated[bool, typer.Option("--force", rich_help_panel=BATCH, help="Overwrite existing results.")]
SkipExisting = Annotated[
    bool,
    typer.Option(
        "--skip-existing",
        rich_help_panel=BATCH,
        help="Skip inputs whose result is complete (resume a batch; partial results are redone).",
    ),
]
Json = Annotated[
    bool,
    typer.Option(
        "--json",
        rich_help_panel=BATCH,
        help="Print one JSON object per input on stdout (input, status, files, metrics, seconds, "
        "error); nothing else goes there.",
    ),
]
Jobs = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        rich_help_panel=BATCH,
        help="Worker processes running inputs in parallel, spread over the visible GPUs or splitting the CPU threads.",
    ),
]
Device = Annotated[str, typer.Option(parser=_device, metavar="auto|cpu|cuda|cuda:N", rich_help_panel=BATCH, help="Where to run.")]
MaxMemory = Annotated[
    Optional[int],
    typer.Option(
        "--max-memory",
        parser=_size,
        metavar="SIZE",
        rich_help_panel=BATCH,
        help="Peak memory of each meshopt process (4G, 512M): jobs that would need more are split "
        "where they can be and refused before starting where not (default: 60% of the available memory, "
        "shared by the --jobs workers).",
    ),
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", rich_help_panel=BATCH, help="No progress or log lines (errors still go to stderr).")
]
Cluster = Annotated[
    Optional[str],
    typer.Option(
        "--cluster",
        metavar="auto|local|ADDRESS",
        rich_help_panel=CLUSTER,
        help="Run each input as a task on a Ray cluster (pip install 'meshopt\\[ray]'): auto joins the one RAY_ADDRESS "
        "names or 'ray start' runs here, local starts one for this run, else a ray.init address. "
        "Default: auto when RAY_ADDRESS is set, else this machine (--cluster none).",
    ),
]
Retries = Annotated[
    int, typer.Option(min=0, rich_help_panel=CLUSTER, help="Cluster: runs again of an input whose worker or node died.")
]
GpusPerTask = Annotated[
    float,
    typer.Option(rich_help_panel=CLUSTER, help="Cluster: GPUs each input asks for with --device cuda (0.5: two share one)."),
]


def _preset(names: str, default: str):
    return Annotated[
        Optional[str],
        typer.Option(
            rich_help_panel=SETTINGS, help=f"Settings preset: {names} (meshopt presets), or a .toml file (default: {default})."
        ),
    ]


def _from_preset(help_text: str, panel: str, *names: str):
    """An option whose default comes from the preset (None here: not given)."""
    return typer.Option(*names, rich_help_panel=panel, help=f"{help_text} (default: from the preset).")


# ---------------------------------------------------------------- options of the textured-mesh commands (style, dream)
Iterations = Annotated[Optional[int], _from_preset("Adam steps", OPTIMIZATION)]
BatchViews = Annotated[Optional[int], _from_preset("Random views rendered per step", RENDERING)]
ViewSize = Annotated[Optional[int], _from_preset("Rendered view size in pixels", RENDERING)]
TextureSize = Annotated[Optional[int], _from_preset("Texture cube size T per face", RENDERING)]
TextureMode = Annotated[
    Optional[Literal["uv", "cubes"]],
    _from_preset(
        "uv: optimize a texture image through the mesh's UV layout (xatlas makes one for meshes without); "
        "cubes: T³ colours per face, the paper's",
        RENDERING,
    ),
]
TextureResolution = Annotated[
    Optional[int],
    _from_preset(
        "Longer side of the image optimized with --texture uv; 0: the input's own (at most 1024), 512 generated", RENDERING
    ),
]
VertexLr = Annotated[Optional[float], _from_preset("Adam learning rate of the vertices", OPTIMIZATION)]
TextureLr = Annotated[Optional[float], _from_preset("Adam learning rate of the texture logits", OPTIMIZATION)]
NoShape = Annotated[
    bool, typer.Option("--no-shape", rich_help_panel=OPTIMIZATION, help="Freeze the vertices: change the texture only.")
]
Seed = Annotated[Optional[int], _from_preset("Random seed of the views", OPTIMIZATION)]
CheckpointEvery = Annotated[
    int,
    typer.Option(
        rich_help_panel=FILES,
        help="Save the optimization state to OUT/NAME.checkpoint.pt every N steps (and on a stop); 0: never.",
    ),
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        rich_help_panel=FILES,
        help="Continue from OUT/NAME.checkpoint.pt (same mesh, image and settings; replaces the interrupted result).",
    ),
]


Precision = Annotated[
    Optional[Literal["auto", "fp32", "bf16"]],
    typer.Option(
        rich_help_panel=OPTIMIZATION,
        help="Number format of the backbone network (reconstruct train: the image encoder): bf16 "
        "autocast where the device runs it fast (AMX or AVX512-BF16 CPUs, bf16 GPUs; meshopt info "
        "says), else fp32 (default: from the preset; auto where it names none).",
    ),
]


def _weights(network: str):
    return Annotated[
        str,
        typer.Option(
            rich_help_panel=OPTIMIZATION,
            help=f"{network} weights: imagenet (torchvision's, cached), random (smoke tests), or a state-dict FILE.",
        ),
    ]


def _exit_with(status_of) -> None:
    """Run a command body; usage errors are one line and exit status 2, Ctrl-C is 130."""
    try:
        status = status_of()
    except console.UsageError as problem:
        console.error(str(problem))
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.error("interrupted")
        raise typer.Exit(130) from None
    raise typer.Exit(status)


def _invoke(name: str, arguments: list[str], flags: dict, options: dict, overrides: dict | None = None) -> None:
    """Run command ``name`` on ``arguments``: ``flags`` are the Typer function's parameters (those
    named like a settings field override it; ``preset``, ``config`` and the batch options are taken
    out), ``options`` the keyword arguments of the command's options dataclass, ``overrides`` further
    settings (flags spelled differently from their field)."""

    def body():
        import dataclasses
        import importlib

        from meshopt_cli.batch import BatchOptions
        from meshopt_cli.command import run_command

        command = importlib.import_module(f"meshopt_cli.commands.{name}").COMMAND
        fields = {f.name for f in dataclasses.fields(command.settings)}
        values = {k: v for k, v in flags.items() if k in fields}
        values.update(overrides or {})
        batch = BatchOptions(
            out=flags["out"],
            force=flags["force"],
            skip_existing=flags["skip_existing"],
            json=flags["json_output"],
            quiet=flags["quiet"],
            jobs=flags["jobs"],
            device=flags["device"],
            max_memory=flags["max_memory"],
            cluster=_cluster(flags["cluster"]),
            retries=flags["retries"],
            gpus_per_task=flags["gpus_per_task"],
        )
        return run_command(
            command,
            arguments,
            batch,
            command.options(**options),
            preset=flags["preset"],
            config=flags["config"],
            overrides=values,
        )

    _exit_with(body)


def _cluster(value: str | None) -> str | None:
    """``--cluster``: None (this machine) for ``none``, and when not given unless ``RAY_ADDRESS`` is set."""
    import os

    if value is None:
        return "auto" if os.environ.get("RAY_ADDRESS") else None
    text = value.strip()
    if not text:
        raise console.UsageError("--cluster needs an address: auto, local, none or HOST:PORT")
    return None if text.lower() == "none" else text


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"meshopt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """meshopt: style transfer, DeepDream and silhouette fitting on meshes."""


MESHES_HELP = "Mesh files (.obj .ply .stl .off .glb .gltf), builtin:NAME, or '-' for paths on stdin"


@app.command("render")
def render_command(
    meshes: Annotated[Optional[List[str]], typer.Argument(help=MESHES_HELP + ". Default: builtin:teapot.")] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            rich_help_panel=FILES,
            help="Output folder; each mesh gets OUT/NAME/ (repeated names get -2, -3, ...). "
            "A .gif path for a single mesh writes only that GIF.",
        ),
    ] = Path("meshopt-out"),
    png: Annotated[
        bool, typer.Option("--png", rich_help_panel=FILES, help="Also write every frame as PNG (OUT/NAME/frames/).")
    ] = False,
    sheet: Annotated[
        bool, typer.Option("--sheet", rich_help_panel=FILES, help="Also write a contact sheet (OUT/NAME/sheet.png).")
    ] = False,
    preset: _preset("default, preview, hq", "default") = None,
    config: Config = None,
    frames: Annotated[Optional[int], _from_preset("Number of views around the mesh", RENDERING)] = None,
    elevation: Annotated[Optional[float], _from_preset("Camera elevation in degrees", RENDERING)] = None,
    distance: Annotated[
        Optional[float],
        _from_preset(
            "Camera distance; the mesh is normalised to [-1, 1] (default: its bounding sphere fills the view)", RENDERING
        ),
    ] = None,
    size: Annotated[Optional[int], _from_preset("Image width and height in pixels", RENDERING)] = None,
    background: Annotated[Optional[str], _from_preset("white, black, grey, #rrggbb or r,g,b in [0, 1]", RENDERING)] = None,
    texture: Annotated[
        Optional[Literal["uv", "cubes"]],
        _from_preset("uv: meshes with a UV-mapped image are drawn through it; cubes: T³ colours per face", RENDERING),
    ] = None,
    texture_size: Annotated[Optional[int], _from_preset("Texture cube size T sampled from the mesh's texture", RENDERING)] = None,
    fps: Annotated[Optional[float], _from_preset("GIF frame rate", RENDERING)] = None,
    force: Force = False,
    skip_existing: SkipExisting = False,
    json_output: Json = False,
    jobs: Jobs = 1,
    device: Device = "auto",
    max_memory: MaxMemory = None,
    quiet: Quiet = False,
    cluster: Cluster = None,
    retries: Retries = 2,
    gpus_per_task: GpusPerTask = 1.0,
) -> None:
    """Write a turntable GIF of each mesh: OUT/NAME/turntable.gif and metrics.json.

    Examples: meshopt render bunny.obj chair.ply;
    meshopt render bunny.obj --frames 36 --size 128 -o bunny.gif;
    find scans -name '*.obj' | meshopt render - --preset preview --jobs 2 --json
    """
    flags = locals()
    _invoke("render", list(meshes or []), flags, dict(png=png, sheet=sheet))


@app.command("fit")
def fit_command(
    targets: Annotated[
        Optional[List[str]],
        typer.Argument(
            help="Target meshes (.obj .ply .stl .off .glb .gltf or builtin:NAME), '-' for paths on stdin; with --images: "
            "the images of one object."
        ),
    ] = None,
    images: Annotated[
        bool,
        typer.Option(
            "--images",
            rich_help_panel=FILES,
            help="The arguments are images of one object (mask: alpha channel, else the "
            "non-background pixels), seen by the cameras of --cameras.",
        ),
    ] = False,
    cameras: Annotated[
        Optional[str],
        typer.Option(
            "--cameras",
            rich_help_panel=FILES,
            help="JSON file: per image azimuth/elevation/distance or K/R/t (a list in the images' order, or keyed by file name).",
        ),
    ] = None,
    azimuth: Annotated[
        Optional[float], typer.Option(rich_help_panel=FILES, help="Camera of a single image: azimuth in degrees (0).")
    ] = None,
    elevation: Annotated[
        Optional[float], typer.Option(rich_help_panel=FILES, help="Camera of a single image: elevation in degrees (30).")
    ] = None,
    distance: Annotated[
        Optional[float], typer.Option(rich_help_panel=FILES, help=f"Camera of a single image: distance ({DEFAULT_DISTANCE}).")
    ] = None,
    holdout: Annotated[
        int, typer.Option(rich_help_panel=FILES, help="With --images: keep N images out of the fit to measure the held-out IoU.")
    ] = 0,
    out: Out = Path("meshopt-out"),
    name: Name = None,
    preset: _preset("default, fast, paper", "default") = None,
    config: Config = None,
    init: Annotated[
        Optional[str], _from_preset("Template mesh (builtin:sphere, 642 vertices; builtin:sphere:4 is finer)", OPTIMIZATION)
    ] = None,
    iterations: Annotated[Optional[int], _from_preset("Optimizer steps on the vertices", OPTIMIZATION)] = None,
    optimizer: Annotated[
        Optional[Literal["largesteps", "adam"]],
        _from_preset(
            "largesteps: uniform Adam on u, vertices x = (I + λL)⁻¹ u (Nicolet et al. 2021); adam: Adam on an offset per "
            "vertex (the paper's)",
            OPTIMIZATION,
        ),
    ] = None,
    largesteps_lambda: Annotated[
        Optional[float], _from_preset("λ of the Large Steps parameterization (larger: smoother steps)", OPTIMIZATION)
    ] = None,
    refine_at: Annotated[
        Optional[float],
        _from_preset(
            "Subdivide the mesh once (642 -> 2562 vertices) after this fraction of the iterations; 0: never", OPTIMIZATION
        ),
    ] = None,
    carve_at: Annotated[
        Optional[float],
        _from_preset(
            "Remove the faces spanning a hole of the training silhouettes (opens holes such as a handle's) after this "
            "fraction of the iterations, then go on with --carve-lambda; 0: never",
            OPTIMIZATION,
        ),
    ] = None,
    carve_margin: Annotated[
        Optional[int],
        _from_preset(
            "--carve-at removes a face whose centroid lies more than this many pixels inside a hole of a training "
            "silhouette (at 256 px)",
            OPTIMIZATION,
        ),
    ] = None,
    carve_lambda: Annotated[
        Optional[float], _from_preset("λ of Large Steps once --carve-at has removed faces", OPTIMIZATION)
    ] = None,
    relax: Annotated[
        Optional[bool],
        _from_preset(
            "At the end, move the vertices no training camera sees to the minimal surface spanning the rest (a cube's "
            "unseen bottom flattens); no training pixel gets worse",
            OPTIMIZATION,
            "--relax/--no-relax",
        ),
    ] = None,
    affine_iterations: Annotated[
        Optional[int], _from_preset("Iterations of the first stage (global scale + translation), 0 to skip", OPTIMIZATION)
    ] = None,
    learning_rate: Annotated[
        Optional[float], _from_preset("Adam learning rate of the vertex offsets", OPTIMIZATION, "--lr")
    ] = None,
    loss: Annotated[
        Optional[Literal["iou", "mse"]], _from_preset("Silhouette loss: iou (1 - IoU, the paper's) or mse", OPTIMIZATION)
    ] = None,
    laplacian: Annotated[Optional[float], _from_preset("Weight of the uniform Laplacian smoothing", OPTIMIZATION)] = None,
    edge: Annotated[Optional[float], _from_preset("Weight of the edge-length (membrane) term", OPTIMIZATION)] = None,
    normal: Annotated[Optional[float], _from_preset("Weight of the normal-consistency term", OPTIMIZATION)] = None,
    flatten: Annotated[Optional[float], _from_preset("Weight of the paper's flatten (smoothness) loss", OPTIMIZATION)] = None,
    seed: Annotated[Optional[int], _from_preset("Random seed of the view sampling", OPTIMIZATION)] = None,
    views: Annotated[
        Optional[int], _from_preset("Mesh targets: training views, azimuths every 360/N degrees at elevation 30", RENDERING)
    ] = None,
    heldout_views: Annotated[
        Optional[int], _from_preset("Mesh targets: held-out views at other azimuths and elevations", RENDERING)
    ] = None,
    batch_views: Annotated[Optional[int], _from_preset("Views rendered per iteration", RENDERING)] = None,
    image_size: Annotated[Optional[int], _from_preset("Silhouette size in pixels during the fit", RENDERING)] = None,
    coarse_image_size: Annotated[
        Optional[int], _from_preset("Silhouette size of the first --coarse-fraction of the iterations; 0: off", RENDERING)
    ] = None,
    coarse_fraction: Annotated[
        Optional[float], _from_preset("Fraction of the vertex iterations rendered at --coarse-image-size", RENDERING)
    ] = None,
    force: Force = False,
    skip_existing: SkipExisting = False,
    json_output: Json = False,
    jobs: Jobs = 1,
    device: Device = "auto",
    max_memory: MaxMemory = None,
    quiet: Quiet = False,
    cluster: Cluster = None,
    retries: Retries = 2,
    gpus_per_task: GpusPerTask = 1.0,
) -> None:
    """Deform a template mesh until its silhouettes match a target's.

    Writes OUT/NAME/fitted.obj, turntable.gif, compare.png and metrics.json.

    Examples: meshopt fit builtin:teapot;
    meshopt fit --images a.png b.png --cameras cams.json;
    meshopt fit scans/*.obj --preset fast --jobs 2 --skip-existing
    """
    flags = locals()
    _invoke(
        "fit",
        list(targets or []),
        flags,
        dict(images=images, cameras=cameras, azimuth=azimuth, elevation=elevation, distance=distance, holdout=holdout, name=name),
    )


@app.command("style")
def style_command(
    arguments: Annotated[
        List[str], typer.Argument(metavar="MESH... IMAGE", help=MESHES_HELP + ", then the style image (PNG, JPEG, ...).")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            rich_help_panel=FILES,
            help="Output folder; each mesh gets OUT/MESH-IMAGE/ (repeated names get -2, -3, ...).",
        ),
    ] = Path("meshopt-out"),
    name: Name = None,
    checkpoint_every: CheckpointEvery = 0,
    resume: Resume = False,
    preset: _preset("fast, paper, texture-only", "fast") = None,
    config: Config = None,
    weights: _weights("VGG16") = "imagenet",
    precision: Precision = None,
    iterations: Iterations = None,
    style_weight: Annotated[Optional[float], _from_preset("Weight of the Gram style term", OPTIMIZATION)] = None,
    style_normalization: Annotated[
        Optional[Literal["target", "none"]],
        _from_preset(
            "target: each layer's Gram error relative to the painting's (independent of the weights file); "
            "none: the paper's absolute Gram error",
            OPTIMIZATION,
        ),
    ] = None,
    content_weight: Annotated[Optional[float], _from_preset("Weight of the vertex-displacement term", OPTIMIZATION)] = None,
    tv_weight: Annotated[Optional[float], _from_preset("Weight of the total variation term", OPTIMIZATION)] = None,
    colour_weight: Annotated[
        Optional[float],
        _from_preset(
            "Weight of the colour term: mean and covariance of the views' colours against the style image's (0: the paper's loss)",
            OPTIMIZATION,
        ),
    ] = None,
    vertex_lr: VertexLr = None,
    texture_lr: TextureLr = None,
    no_shape: NoShape = False,
    seed: Seed = None,
    batch_views: BatchViews = None,
    image_size: ViewSize = None,
    texture_size: TextureSize = None,
    texture: TextureMode = None,
    texture_resolution: TextureResolution = None,
    force: Force = False,
    skip_existing: SkipExisting = False,
    json_output: Json = False,
    jobs: Jobs = 1,
    device: Device = "auto",
    max_memory: MaxMemory = None,
    quiet: Quiet = False,
    cluster: Cluster = None,
    retries: Retries = 2,
    gpus_per_task: GpusPerTask = 1.0,
) -> None:
    """Transfer the style of an image to meshes' texture and shape (2D-to-3D style transfer).

    Writes OUT/NAME/stylized.obj (+ .mtl, .png), turntable.gif, before-after.png and metrics.json.

    Examples: meshopt style bunny.obj painting.jpg;
    meshopt style builtin:teapot starry.png --preset paper --device cuda;
    find . -name '*.obj' | meshopt style - painting.jpg --json
    """
    flags = locals()
    _invoke(
        "style",
        list(arguments),
        flags,
        dict(weights=weights, name=name, checkpoint_every=checkpoint_every, resume=resume),
        {"optimize_vertices": False} if no_shape else None,
    )


@app.command("dream")
def dream_command(
    meshes: Annotated[Optional[List[str]], typer.Argument(help=MESHES_HELP + " (default: builtin:teapot).")] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            rich_help_panel=FILES,
            help="Output folder; each mesh gets OUT/MESH-LAYER/ (repeated names get -2, -3, ...).",
        ),
    ] = Path("meshopt-out"),
    name: Name = None,
    checkpoint_every: CheckpointEvery = 0,
    resume: Resume = False,
    preset: _preset("fast, paper, texture-only", "fast") = None,
    config: Config = None,
    layer: Annotated[
        Optional[str],
        typer.Option(
            parser=_layer,
            metavar="|".join(GOOGLENET_LAYERS),
            rich_help_panel=OPTIMIZATION,
            help="GoogLeNet inception block whose activations grow (torchvision's "
            "inception4c spelling works too; default: from the preset).",
        ),
    ] = None,
    weights: _weights("GoogLeNet") = "imagenet",
    precision: Precision = None,
    iterations: Iterations = None,
    length_weight: Annotated[Optional[float], _from_preset("Weight of the edge-length variance term", OPTIMIZATION)] = None,
    init_bias: Annotated[Optional[str], _from_preset("R,G,B added to the initial textures, e.g. 0,0.5,0.5", OPTIMIZATION)] = None,
    vertex_lr: VertexLr = None,
    texture_lr: TextureLr = None,
    no_shape: NoShape = False,
    seed: Seed = None,
    batch_views: BatchViews = None,
    image_size: ViewSize = None,
    texture_size: TextureSize = None,
    texture: TextureMode = None,
    texture_resolution: TextureResolution = None,
    force: Force = False,
    skip_existing: SkipExisting = False,
    json_output: Json = False,
    jobs: Jobs = 1,
    device: Device = "auto",
    max_memory: MaxMemory = None,
    quiet: Quiet = False,
    cluster: Cluster = None,
    retries: Retries = 2,
    gpus_per_task: GpusPerTask = 1.0,
) -> None:
    """Grow the patterns a GoogLeNet layer sees onto meshes' texture and shape (3D DeepDream).

    Writes OUT/NAME/dream.obj (+ .mtl, .png), turntable.gif, before-after.png and metrics.json.

    Examples: meshopt dream;
    meshopt dream bunny.obj --layer inception_4d --init-bias 0,0.5,0.5;
    meshopt dream *.obj --preset paper --device cuda --jobs 4 --skip-existing
    """
    flags = locals()
    _invoke(
        "dream",
        list(meshes or []),
        flags,
        dict(weights=weights, name=name, checkpoint_every=checkpoint_every, resume=resume),
        {"optimize_vertices": False} if no_shape else None,
    )


@app.command("info")
def info_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Versions, devices, the renderer backend and its kernels, and the cached network weights.

    Example: meshopt info --json | jq .cuda
    """

    def body():
        from meshopt_cli.commands import info

        return info.run(json_output)

    _exit_with(body)


presets_app = typer.Typer(
    help="List the settings presets, or show one as TOML.", invoke_without_command=True, no_args_is_help=False
)
app.add_typer(presets_app, name="presets")


@presets_app.callback()
def presets_list(context: typer.Context) -> None:
    """List every command's presets with their descriptions.

    Example: meshopt presets
    """
    if context.invoked_subcommand is not None:
        return
    from meshopt_cli.commands import presets

    _exit_with(presets.list_presets)


@presets_app.command("show")
def presets_show(
    name: Annotated[str, typer.Argument(help="COMMAND/NAME (e.g. fit/fast), or NAME when only one command has it.")],
) -> None:
    """Print one preset as TOML (usable with --preset FILE.toml after editing).

    Example: meshopt presets show fit/fast > mine.toml
    """
    from meshopt_cli.commands import presets

    _exit_with(lambda: presets.show_preset(name))


# ---------------------------------------------------------------- reconstruct (issue 13): a sub-app of four commands
reconstruct_app = typer.Typer(
    help="Single-image 3D reconstruction trained from silhouettes (the paper's §3.1): dataset, train, eval, predict.",
    no_args_is_help=True,
)
app.add_typer(reconstruct_app, name="reconstruct")
DataDir = Annotated[Path, typer.Argument(help="Dataset folder of {class}_{split}_images.npz / _voxels.npz (the paper's files).")]
RunDir = Annotated[Path, typer.Argument(help="Training run folder (what 'reconstruct train -o RUN' wrote).")]


@reconstruct_app.command("dataset")
def reconstruct_dataset_command(
    folders: Annotated[
        Optional[List[str]],
        typer.Argument(help="Folders whose sub-folders hold each class's meshes (a folder of meshes is one class)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", rich_help_panel=FILES, help="Dataset folder to write.")] = Path("data"),
    procedural: Annotated[
        bool,
        typer.Option("--procedural", rich_help_panel=FILES, help="Generate procedural shape classes instead of reading meshes."),
    ] = False,
    procedural_classes: Annotated[
        Optional[str],
        _from_preset(
            "--procedural: comma-separated classes of " + PROCEDURAL_CLASSES + " (the varied preset: assembly, pebble, stack)",
            FILES,
            "--classes",
        ),
    ] = None,
    objects: Annotated[Optional[int], _from_preset("--procedural: objects per class", FILES)] = None,
    image_size: Annotated[Optional[int], _from_preset("Image size in pixels (the paper's: 64)", RENDERING)] = None,
    train_fraction: Annotated[Optional[float], _from_preset("Share of each class's objects for training", SETTINGS)] = None,
    val_fraction: Annotated[Optional[float], _from_preset("Share for validation", SETTINGS)] = None,
    test_fraction: Annotated[Optional[float], _from_preset("Share for testing", SETTINGS)] = None,
    seed: Annotated[Optional[int], _from_preset("Seed of the split (and of the procedural shapes)", SETTINGS)] = None,
    preset: _preset("default", "default") = None,
    config: Config = None,
    force: Force = False,
    json_output: Annotated[
        bool, typer.Option("--json", rich_help_panel=BATCH, help="Print one JSON summary line on stdout.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Write a dataset in the paper's format: 24 views (elevation 30, azimuth 15k) and 32³ voxels per object.

    Examples: meshopt reconstruct dataset --procedural --objects 300 -o data/;
    meshopt reconstruct dataset my_meshes/ -o data/  (my_meshes/chair/*.obj, my_meshes/table/*.obj ...)
    """
    overrides = dict(
        procedural_classes=procedural_classes,
        objects=objects,
        image_size=image_size,
        train_fraction=train_fraction,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )

    def body():
        from meshopt_cli.commands import reconstruct

        return reconstruct.run_dataset(list(folders or []), out, procedural, force, quiet, json_output, preset, config, overrides)

    _exit_with(body)


@reconstruct_app.command("train")
def reconstruct_train_command(
    data: DataDir,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", rich_help_panel=FILES, help="Run folder: model.pt, checkpoint.pt, loss.png, metrics.json."),
    ] = Path("run"),
    resume: Annotated[
        bool, typer.Option("--resume", rich_help_panel=FILES, help="Continue from OUT/checkpoint.pt (same data and settings).")
    ] = False,
    preset: _preset("fast, paper, paper-single-class", "fast") = None,
    config: Config = None,
    classes: Annotated[Optional[str], _from_preset("Comma-separated class ids to train on (empty: all)", SETTINGS)] = None,
    iterations: Annotated[Optional[int], _from_preset("Training steps", OPTIMIZATION)] = None,
    batch_size: Annotated[
        Optional[int], _from_preset("Objects per step (two views each), split over torchrun's processes", OPTIMIZATION)
    ] = None,
    learning_rate: Annotated[Optional[float], _from_preset("Adam learning rate", OPTIMIZATION, "--lr")] = None,
    lr_reduce_point: Annotated[
        Optional[float], _from_preset("Fraction of the iterations after which the rate drops", OPTIMIZATION)
    ] = None,
    lambda_smoothness: Annotated[Optional[float], _from_preset("Weight of the smoothness (flatten) loss", OPTIMIZATION)] = None,
    image_size: Annotated[Optional[int], _from_preset("Render and input size (0: the dataset's)", RENDERING)] = None,
    seed: Annotated[Optional[int], _from_preset("Seed of the weights and of the batches", OPTIMIZATION)] = None,
    precision: Precision = None,
    checkpoint_every: Annotated[
        Optional[int], _from_preset("Steps between checkpoints (0: at the end and on a stop only)", FILES)
    ] = None,
    force: Annotated[bool, typer.Option("--force", rich_help_panel=FILES, help="Start over in an OUT that holds a run.")] = False,
    device: Device = "auto",
    max_memory: MaxMemory = None,
    quiet: Quiet = False,
) -> None:
    """Train the paper's encoder-decoder from silhouettes. Ctrl-C saves a checkpoint; --resume continues it.

    Several processes (data parallel): torchrun --nproc_per_node 2 -m meshopt_cli reconstruct train DATA -o RUN

    Examples: meshopt reconstruct train data/ -o run/; meshopt reconstruct train data/ -o run/ --preset paper --device cuda
    """
    overrides = dict(
        classes=classes,
        iterations=iterations,
        batch_size=batch_size,
        learning_rate=learning_rate,
        lr_reduce_point=lr_reduce_point,
        lambda_smoothness=lambda_smoothness,
        image_size=image_size,
        seed=seed,
        precision=precision,
        checkpoint_every=checkpoint_every,
    )

    def body():
        from meshopt_cli.commands import reconstruct

        return reconstruct.run_train(data, out, resume, force, device, quiet, preset, config, overrides, max_memory)

    _exit_with(body)


@reconstruct_app.command("eval")
def reconstruct_eval_command(
    run: RunDir,
    data: DataDir,
    split: Annotated[Literal["train", "val", "test"], typer.Option(help="Which split to evaluate.")] = "test",
    views: Annotated[int, typer.Option(help="Input views per object, evenly spaced of the 24 (the paper: 24).")] = 24,
    classes: Annotated[
        Optional[str], typer.Option(help="Comma-separated classes (default: those the run was trained on).")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object instead of the table.")
    ] = False,
    device: Device = "auto",
    quiet: Quiet = False,
) -> None:
    """Voxel IoU at 32³ per class (the paper's protocol), beside the retrieval and template baselines.

    Writes RUN/eval-SPLIT.json. Example: meshopt reconstruct eval run/ data/
    """

    def body():
        from meshopt_cli.commands import reconstruct

        return reconstruct.run_eval(run, data, split, views, classes, device, quiet, json_output)

    _exit_with(body)


@reconstruct_app.command("predict")
def reconstruct_predict_command(
    run: RunDir,
    images: Annotated[
        Optional[List[str]],
        typer.Argument(help="Images (any size; mask from alpha or the border colour), '-' for paths on stdin."),
    ] = None,
    out: Out = Path("meshopt-out"),
    name: Name = None,
    preset: _preset("default", "default") = None,
    config: Config = None,
    turntable_frames: Annotated[Optional[int], _from_preset("Turntable frames", RENDERING)] = None,
    turntable_size: Annotated[Optional[int], _from_preset("Turntable size in pixels", RENDERING)] = None,
    force: Force = False,
    skip_existing: SkipExisting = False,
    json_output: Json = False,
    jobs: Jobs = 1,
    device: Device = "auto",
    max_memory: MaxMemory = None,
    quiet: Quiet = False,
    cluster: Cluster = None,
    retries: Retries = 2,
    gpus_per_task: GpusPerTask = 1.0,
) -> None:
    """Reconstruct a mesh from each image with a trained run.

    Writes OUT/NAME/mesh.obj, turntable.gif, compare.png (the input beside the prediction's silhouettes) and metrics.json.

    Example: meshopt reconstruct predict run/ photo.png -o out/
    """
    flags = locals()
    _invoke("reconstruct", list(images or []), flags, dict(run=str(run), name=name))


def main() -> None:
    console.one_line_warnings()
    try:
        app()
    except SystemExit as done:
        _exit_without_teardown(done.code)
    _exit_without_teardown(0)


def _exit_without_teardown(code) -> None:
    """End the process as ``sys.exit(code)`` would, less the interpreter's teardown of every module:
    once torch is imported that teardown takes 0.6-1 s of CPU (2-vCPU EPYC), a tenth of a default
    ``meshopt fit``. What a user could notice still happens first: other non-daemon threads are
    joined, the ``atexit`` handlers run (Ray's shutdown, temporary folders, logging) and both
    streams are flushed."""
    import atexit
    import os
    import threading

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("text"): Python prints it and exits with 1
        print(code, file=sys.stderr)
        status = 1
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
            pass
    os._exit(status)


if __name__ == "__main__":
    main()
