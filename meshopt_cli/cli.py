"""The `meshopt` command line: parses arguments and calls one function per command.

Heavy imports (torch, trimesh, torchvision) happen inside the commands so that
`meshopt --help` stays fast.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from meshopt_cli import __version__, console

app = typer.Typer(
    name="meshopt",
    help="Optimize 3D meshes through a differentiable mesh renderer "
    "(Neural 3D Mesh Renderer, Kato et al. 2018).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"meshopt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """meshopt: style transfer, DeepDream and silhouette fitting on meshes."""


def _exit_with(status_of) -> None:
    """Run a command body; usage errors are one line and exit status 2, Ctrl-C is 130."""
    try:
        status = status_of()
    except console.UsageError as problem:
        console.error(str(problem))
        raise typer.Exit(2)
    except KeyboardInterrupt:
        console.error("interrupted")
        raise typer.Exit(130)
    raise typer.Exit(status)


# Options every command shares (see meshopt_cli/batch.py).
_OUT_HELP = "Output folder; each input gets OUT/NAME/ (repeated names get -2, -3, ...)."
_FORCE = typer.Option(False, "--force", help="Overwrite existing results.")
_SKIP = typer.Option(False, "--skip-existing", help="Skip inputs whose result is complete (resume a batch; partial results are redone).")
_JSON = typer.Option(False, "--json", help="Print one JSON object per input on stdout (input, status, files, metrics, seconds, error); nothing else goes there.")
_QUIET = typer.Option(False, "--quiet", "-q", help="No progress or log lines (errors still go to stderr).")
_JOBS = typer.Option(1, "--jobs", "-j", help="Worker processes running inputs in parallel, spread over the visible GPUs or splitting the CPU threads.")
_DEVICE = typer.Option("auto", help="auto, cpu, cuda or cuda:N.")
_CONFIG = typer.Option(None, "--config", help="TOML file of settings: overrides the preset, flags override it (may name its preset and hold [COMMAND] tables).")

# Options of the two textured-mesh commands (style, dream).
_STEPS = typer.Option(None, help="Adam steps (default: from the preset).")
_BATCH_VIEWS = typer.Option(None, help="Random views rendered per step (default: from the preset).")
_VIEW_SIZE = typer.Option(None, help="Rendered view size in pixels (default: from the preset).")
_TEXTURE_SIZE = typer.Option(None, help="Texture cube size T per face (default: from the preset).")
_VERTEX_LR = typer.Option(None, help="Adam learning rate of the vertices (default: from the preset).")
_TEXTURE_LR = typer.Option(None, help="Adam learning rate of the texture logits (default: from the preset).")
_NO_SHAPE = typer.Option(False, "--no-shape", help="Freeze the vertices: change the texture only.")
_CHECKPOINT_EVERY = typer.Option(0, help="Save the optimization state to OUT/NAME.checkpoint.pt every N steps (and on a stop); 0: never.")


def _batch_options(out: Path, force: bool, skip_existing: bool, json_output: bool, quiet: bool, jobs: int, device: str):
    from meshopt_cli.batch import BatchOptions

    return BatchOptions(out=out, force=force, skip_existing=skip_existing, json=json_output, quiet=quiet, jobs=jobs,
                        device=device)


@app.command("render")
def render_command(
    meshes: Optional[List[str]] = typer.Argument(None, help="Mesh files (.obj .ply .stl .off .glb .gltf), builtin:NAME, or '-' for paths on stdin. Default: builtin:teapot."),
    out: Path = typer.Option(Path("meshopt-out"), "--out", "-o", help=_OUT_HELP + " A .gif path for a single mesh writes only that GIF."),
    preset: Optional[str] = typer.Option(None, help="Settings preset: default, preview, hq (presets/render/), or a .toml file."),
    config: Optional[Path] = _CONFIG,
    frames: Optional[int] = typer.Option(None, help="Number of views around the mesh (preset: 90)."),
    elevation: Optional[float] = typer.Option(None, help="Camera elevation in degrees (preset: 30)."),
    distance: Optional[float] = typer.Option(None, help="Camera distance; the mesh is normalised to [-1, 1] (preset: 2.732)."),
    size: Optional[int] = typer.Option(None, help="Image width and height in pixels (preset: 256)."),
    background: Optional[str] = typer.Option(None, help="white, black, grey, #rrggbb or r,g,b in [0, 1] (preset: white)."),
    texture_size: Optional[int] = typer.Option(None, help="Texture cube size T sampled from the mesh's texture (preset: 4)."),
    fps: Optional[float] = typer.Option(None, help="GIF frame rate (preset: 12)."),
    png: bool = typer.Option(False, "--png", help="Also write every frame as PNG (OUT/NAME/frames/)."),
    sheet: bool = typer.Option(False, "--sheet", help="Also write a contact sheet (OUT/NAME/sheet.png)."),
    force: bool = _FORCE,
    skip_existing: bool = _SKIP,
    json_output: bool = _JSON,
    jobs: int = _JOBS,
    device: str = _DEVICE,
    quiet: bool = _QUIET,
) -> None:
    """Write a turntable GIF of each mesh: OUT/NAME/turntable.gif and metrics.json.

    Examples: meshopt render bunny.obj chair.ply;
    meshopt render bunny.obj --frames 36 --size 128 -o bunny.gif;
    find scans -name '*.obj' | meshopt render - --preset preview --jobs 2 --json
    """
    def body():
        from meshopt_cli.commands import render

        overrides = dict(frames=frames, elevation=elevation, distance=distance, size=size, background=background,
                         texture_size=texture_size, fps=fps)
        settings, chosen = render.resolve_named(preset, overrides, config)
        payload = render.RenderPayload(settings=settings, preset=chosen, png=png, sheet=sheet)
        return render.run(list(meshes or []), _batch_options(out, force, skip_existing, json_output, quiet, jobs, device), payload)

    _exit_with(body)


@app.command("fit")
def fit_command(
    targets: Optional[List[str]] = typer.Argument(None, help="Target meshes (.obj .ply .stl .off .glb .gltf or builtin:NAME), '-' for paths on stdin; with --images: the images of one object."),
    images: bool = typer.Option(False, "--images", help="The arguments are images of one object (mask: alpha channel, else the non-background pixels), seen by the cameras of --cameras."),
    cameras: Optional[str] = typer.Option(None, "--cameras", help="JSON file: per image azimuth/elevation/distance or K/R/t (a list in the images' order, or keyed by file name)."),
    azimuth: Optional[float] = typer.Option(None, help="Camera of a single image: azimuth in degrees (0)."),
    elevation: Optional[float] = typer.Option(None, help="Camera of a single image: elevation in degrees (30)."),
    distance: Optional[float] = typer.Option(None, help="Camera of a single image: distance (2.732)."),
    holdout: int = typer.Option(0, help="With --images: keep N images out of the fit to measure the held-out IoU."),
    init: Optional[str] = typer.Option(None, help="Template mesh (preset: builtin:sphere, 642 vertices; builtin:sphere:4 is finer)."),
    preset: Optional[str] = typer.Option(None, help="Settings preset: default, fast, paper (presets/fit/), or a .toml file."),
    config: Optional[Path] = _CONFIG,
    views: Optional[int] = typer.Option(None, help="Mesh targets: training views, azimuths every 360/N degrees at elevation 30 (default: from the preset)."),
    heldout_views: Optional[int] = typer.Option(None, help="Mesh targets: held-out views at other azimuths and elevations (default: from the preset)."),
    batch_views: Optional[int] = typer.Option(None, help="Views rendered per iteration (default: from the preset)."),
    iterations: Optional[int] = typer.Option(None, help="Adam iterations on the vertices (default: from the preset)."),
    affine_iterations: Optional[int] = typer.Option(None, help="Iterations of the first stage (global scale + translation), 0 to skip (default: from the preset)."),
    image_size: Optional[int] = typer.Option(None, help="Silhouette size in pixels during the fit (default: from the preset)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate of the vertex offsets (default: from the preset)."),
    loss: Optional[str] = typer.Option(None, help="Silhouette loss: iou (1 - IoU, the paper's) or mse (default: from the preset)."),
    laplacian: Optional[float] = typer.Option(None, help="Weight of the uniform Laplacian smoothing (default: from the preset)."),
    edge: Optional[float] = typer.Option(None, help="Weight of the edge-length (membrane) term (default: from the preset)."),
    normal: Optional[float] = typer.Option(None, help="Weight of the normal-consistency term (default: from the preset)."),
    flatten: Optional[float] = typer.Option(None, help="Weight of the paper's flatten (smoothness) loss (default: from the preset)."),
    seed: Optional[int] = typer.Option(None, help="Random seed of the view sampling (default: from the preset)."),
    out: Path = typer.Option(Path("meshopt-out"), "--out", "-o", help=_OUT_HELP),
    name: Optional[str] = typer.Option(None, help="Folder name of the result of one input (default: the target's name)."),
    force: bool = _FORCE,
    skip_existing: bool = _SKIP,
    json_output: bool = _JSON,
    jobs: int = _JOBS,
    device: str = _DEVICE,
    quiet: bool = _QUIET,
) -> None:
    """Deform a template mesh until its silhouettes match a target's.

    Writes OUT/NAME/fitted.obj, turntable.gif, compare.png and metrics.json.

    Examples: meshopt fit builtin:teapot;
    meshopt fit --images a.png b.png --cameras cams.json;
    meshopt fit scans/*.obj --preset fast --jobs 2 --skip-existing
    """
    def body():
        from meshopt_cli.commands import fit

        overrides = dict(init=init, views=views, heldout_views=heldout_views, batch_views=batch_views, iterations=iterations,
                         affine_iterations=affine_iterations, image_size=image_size, learning_rate=lr, loss=loss,
                         laplacian=laplacian, edge=edge, normal=normal, flatten=flatten, seed=seed)
        options = fit.FitOptions(preset=preset, config=config, overrides=overrides, images=images, cameras=cameras,
                                 azimuth=azimuth, elevation=elevation, distance=distance, holdout=holdout, name=name)
        return fit.run(list(targets or []), _batch_options(out, force, skip_existing, json_output, quiet, jobs, device), options)

    _exit_with(body)


@app.command("style")
def style_command(
    arguments: List[str] = typer.Argument(..., metavar="MESH... IMAGE", help="Mesh files (.obj .ply .stl .off .glb .gltf), builtin:NAME or '-' for paths on stdin, then the style image (PNG, JPEG, ...)."),
    preset: Optional[str] = typer.Option(None, help="Settings preset: fast, paper, texture-only (presets/style/), or a .toml file (default: fast)."),
    config: Optional[Path] = _CONFIG,
    weights: str = typer.Option("imagenet", help="VGG16 weights: imagenet (torchvision's, cached), random (smoke tests), or a state-dict FILE."),
    iterations: Optional[int] = _STEPS,
    batch_views: Optional[int] = _BATCH_VIEWS,
    image_size: Optional[int] = _VIEW_SIZE,
    texture_size: Optional[int] = _TEXTURE_SIZE,
    style_weight: Optional[float] = typer.Option(None, help="Weight of the Gram style term (default: from the preset)."),
    content_weight: Optional[float] = typer.Option(None, help="Weight of the vertex-displacement term (default: from the preset)."),
    tv_weight: Optional[float] = typer.Option(None, help="Weight of the total variation term (default: from the preset)."),
    vertex_lr: Optional[float] = _VERTEX_LR,
    texture_lr: Optional[float] = _TEXTURE_LR,
    no_shape: bool = _NO_SHAPE,
    seed: Optional[int] = typer.Option(None, help="Random seed of the views and lights (default: from the preset)."),
    out: Path = typer.Option(Path("meshopt-out"), "--out", "-o", help="Output folder; each mesh gets OUT/MESH-IMAGE/ (repeated names get -2, -3, ...)."),
    name: Optional[str] = typer.Option(None, help="Folder name of the result of one mesh (default: MESH-IMAGE)."),
    force: bool = _FORCE,
    skip_existing: bool = _SKIP,
    json_output: bool = _JSON,
    jobs: int = _JOBS,
    device: str = _DEVICE,
    quiet: bool = _QUIET,
    checkpoint_every: int = _CHECKPOINT_EVERY,
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/NAME.checkpoint.pt (same mesh, image and settings; replaces the interrupted result)."),
) -> None:
    """Transfer the style of an image to meshes' texture and shape (2D-to-3D style transfer).

    Writes OUT/NAME/stylized.obj (+ .mtl, .png), turntable.gif, before-after.png and metrics.json.

    Examples: meshopt style bunny.obj painting.jpg;
    meshopt style builtin:teapot starry.png --preset paper --device cuda;
    find . -name '*.obj' | meshopt style - painting.jpg --json
    """
    def body():
        from meshopt_cli.commands import style

        overrides = dict(iterations=iterations, batch_views=batch_views, image_size=image_size, texture_size=texture_size,
                         style_weight=style_weight, content_weight=content_weight, tv_weight=tv_weight,
                         vertex_lr=vertex_lr, texture_lr=texture_lr, seed=seed,
                         optimize_vertices=False if no_shape else None)
        options = style.StyleOptions(preset=preset, config=config, overrides=overrides, weights=weights, name=name,
                                     checkpoint_every=checkpoint_every, resume=resume)
        return style.run(list(arguments), _batch_options(out, force, skip_existing, json_output, quiet, jobs, device), options)

    _exit_with(body)


@app.command("dream")
def dream_command(
    meshes: Optional[List[str]] = typer.Argument(None, help="Mesh files (.obj .ply .stl .off .glb .gltf), builtin:NAME or '-' for paths on stdin (default: builtin:teapot)."),
    preset: Optional[str] = typer.Option(None, help="Settings preset: fast, paper, texture-only (presets/dream/), or a .toml file (default: fast)."),
    config: Optional[Path] = _CONFIG,
    layer: Optional[str] = typer.Option(None, help="GoogLeNet inception block whose activations grow: inception_3a ... inception_5b (default: from the preset, inception_4c)."),
    weights: str = typer.Option("imagenet", help="GoogLeNet weights: imagenet (torchvision's, cached), random (smoke tests), or a state-dict FILE."),
    iterations: Optional[int] = _STEPS,
    batch_views: Optional[int] = _BATCH_VIEWS,
    image_size: Optional[int] = _VIEW_SIZE,
    texture_size: Optional[int] = _TEXTURE_SIZE,
    length_weight: Optional[float] = typer.Option(None, help="Weight of the edge-length variance term (default: from the preset)."),
    init_bias: Optional[str] = typer.Option(None, help="R,G,B added to the initial textures, e.g. 0,0.5,0.5 (default: from the preset, 0,0,0)."),
    vertex_lr: Optional[float] = _VERTEX_LR,
    texture_lr: Optional[float] = _TEXTURE_LR,
    no_shape: bool = _NO_SHAPE,
    seed: Optional[int] = typer.Option(None, help="Random seed of the views and backgrounds (default: from the preset)."),
    out: Path = typer.Option(Path("meshopt-out"), "--out", "-o", help="Output folder; each mesh gets OUT/MESH-LAYER/ (repeated names get -2, -3, ...)."),
    name: Optional[str] = typer.Option(None, help="Folder name of the result of one mesh (default: MESH-LAYER)."),
    force: bool = _FORCE,
    skip_existing: bool = _SKIP,
    json_output: bool = _JSON,
    jobs: int = _JOBS,
    device: str = _DEVICE,
    quiet: bool = _QUIET,
    checkpoint_every: int = _CHECKPOINT_EVERY,
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/NAME.checkpoint.pt (same mesh and settings; replaces the interrupted result)."),
) -> None:
    """Grow the patterns a GoogLeNet layer sees onto meshes' texture and shape (3D DeepDream).

    Writes OUT/NAME/dream.obj (+ .mtl, .png), turntable.gif, before-after.png and metrics.json.

    Examples: meshopt dream;
    meshopt dream bunny.obj --layer inception_4d --init-bias 0,0.5,0.5;
    meshopt dream *.obj --preset paper --device cuda --jobs 4 --skip-existing
    """
    def body():
        from meshopt_cli.commands import dream

        overrides = dict(layer=layer, iterations=iterations, batch_views=batch_views, image_size=image_size,
                         texture_size=texture_size, length_weight=length_weight, init_bias=init_bias,
                         vertex_lr=vertex_lr, texture_lr=texture_lr, seed=seed,
                         optimize_vertices=False if no_shape else None)
        options = dream.DreamOptions(preset=preset, config=config, overrides=overrides, weights=weights, name=name,
                                     checkpoint_every=checkpoint_every, resume=resume)
        return dream.run(list(meshes or []), _batch_options(out, force, skip_existing, json_output, quiet, jobs, device), options)

    _exit_with(body)


@app.command("info")
def info_command(json_output: bool = typer.Option(False, "--json", help="Print one JSON object instead of text.")) -> None:
    """Versions, devices, the renderer backend and its kernels, and the cached network weights.

    Example: meshopt info --json | jq .cuda
    """
    def body():
        from meshopt_cli.commands import info

        return info.run(json_output)

    _exit_with(body)


presets_app = typer.Typer(help="List the settings presets, or show one as TOML.", invoke_without_command=True,
                          no_args_is_help=False)
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
def presets_show(name: str = typer.Argument(..., help="COMMAND/NAME (e.g. fit/fast), or NAME when only one command has it.")) -> None:
    """Print one preset as TOML (usable with --preset FILE.toml after editing).

    Example: meshopt presets show fit/fast > mine.toml
    """
    from meshopt_cli.commands import presets

    _exit_with(lambda: presets.show_preset(name))


def main() -> None:
    console.one_line_warnings()
    app()


if __name__ == "__main__":
    main()
