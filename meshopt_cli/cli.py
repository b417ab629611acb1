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


@app.command("render")
def render_command(
    meshes: Optional[List[str]] = typer.Argument(None, help="Mesh files (.obj .ply .stl .off .glb .gltf) or builtin:NAME. Default: builtin:teapot."),
    out: Path = typer.Option(Path("meshopt-out"), "--out", "-o", help="Output folder, or a .gif path for a single mesh."),
    frames: int = typer.Option(90, help="Number of views around the mesh."),
    elevation: float = typer.Option(30.0, help="Camera elevation in degrees."),
    distance: float = typer.Option(2.732, help="Camera distance (the mesh is normalised to [-1, 1])."),
    size: int = typer.Option(256, help="Image width and height in pixels."),
    background: str = typer.Option("white", help="white, black, grey, #rrggbb or r,g,b in [0, 1]."),
    texture_size: int = typer.Option(4, help="Texture cube size T sampled from the mesh's texture."),
    fps: float = typer.Option(12.0, help="GIF frame rate."),
    png: bool = typer.Option(False, "--png", help="Also write every frame as PNG into NAME-frames/."),
    sheet: bool = typer.Option(False, "--sheet", help="Also write a contact sheet NAME-sheet.png."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or log lines."),
) -> None:
    """Write a turntable GIF of each mesh.

    Example: meshopt render bunny.obj --frames 36 --size 128 -o bunny.gif
    """
    from meshopt_cli.commands import render

    settings = render.RenderSettings(frames=frames, elevation=elevation, distance=distance, size=size,
                                     background=background, texture_size=texture_size, fps=fps, png=png,
                                     sheet=sheet, force=force, quiet=quiet)
    _exit_with(lambda: render.run(meshes or ["builtin:teapot"], out, settings, device))


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
    preset: str = typer.Option("default", help="Settings preset: default, fast, paper (presets/fit/), or a .toml file."),
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
    out: Path = typer.Option(Path("meshopt-out"), "--out", "-o", help="Output folder; each input gets OUT/NAME/."),
    name: Optional[str] = typer.Option(None, help="Folder name of the result of one input (default: the target's name)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing results."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or log lines."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object per input on stdout."),
) -> None:
    """Deform a template mesh until its silhouettes match a target's.

    Writes OUT/NAME/fitted.obj, turntable.gif, compare.png and metrics.json.

    Examples: meshopt fit builtin:teapot;
    meshopt fit --images a.png b.png --cameras cams.json;
    meshopt fit --images side.png --azimuth 90 --preset fast
    """
    from meshopt_cli.commands import fit

    overrides = dict(init=init, views=views, heldout_views=heldout_views, batch_views=batch_views, iterations=iterations,
                     affine_iterations=affine_iterations, image_size=image_size, learning_rate=lr, loss=loss,
                     laplacian=laplacian, edge=edge, normal=normal, flatten=flatten, seed=seed)
    options = fit.FitOptions(out=out, preset=preset, overrides=overrides, device=device, images=images, cameras=cameras,
                             azimuth=azimuth, elevation=elevation, distance=distance, holdout=holdout, name=name,
                             force=force, quiet=quiet, json=json_output)
    _exit_with(lambda: fit.run(list(targets or []), options))


@app.command("style")
def style_command(
    mesh: str = typer.Argument(..., help="Mesh file (.obj .ply .stl .off .glb .gltf) or builtin:NAME."),
    image: str = typer.Argument(..., help="Style image (PNG, JPEG, ...; grey, palette and RGBA work)."),
    preset: str = typer.Option("fast", help="Settings preset: fast, paper, texture-only (presets/style/), or a .toml file."),
    weights: str = typer.Option("imagenet", help="VGG16 weights: imagenet (torchvision's, cached), random (smoke tests), or a state-dict FILE."),
    iterations: Optional[int] = typer.Option(None, help="Adam steps (default: from the preset)."),
    batch_views: Optional[int] = typer.Option(None, help="Random views rendered per step (default: from the preset)."),
    image_size: Optional[int] = typer.Option(None, help="Rendered view size in pixels (default: from the preset)."),
    texture_size: Optional[int] = typer.Option(None, help="Texture cube size T per face (default: from the preset)."),
    style_weight: Optional[float] = typer.Option(None, help="Weight of the Gram style term (default: from the preset)."),
    content_weight: Optional[float] = typer.Option(None, help="Weight of the vertex-displacement term (default: from the preset)."),
    tv_weight: Optional[float] = typer.Option(None, help="Weight of the total variation term (default: from the preset)."),
    vertex_lr: Optional[float] = typer.Option(None, help="Adam learning rate of the vertices (default: from the preset)."),
    texture_lr: Optional[float] = typer.Option(None, help="Adam learning rate of the texture logits (default: from the preset)."),
    no_shape: bool = typer.Option(False, "--no-shape", help="Freeze the vertices: change the texture only."),
    seed: Optional[int] = typer.Option(None, help="Random seed of the views and lights (default: from the preset)."),
    out: Path = typer.Option(Path("meshopt-out"), "--out", "-o", help="Output folder; the result goes to OUT/NAME/."),
    name: Optional[str] = typer.Option(None, help="Folder name of the result (default: MESH-IMAGE)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing result."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or log lines."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    checkpoint_every: int = typer.Option(0, help="Save the optimization state to OUT/NAME.checkpoint.pt every N steps (and on Ctrl-C); 0: never."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/NAME.checkpoint.pt (same mesh, image and settings; replaces the interrupted result)."),
) -> None:
    """Transfer the style of an image to a mesh's texture and shape (2D-to-3D style transfer).

    Writes OUT/NAME/stylized.obj (+ .mtl, .png), turntable.gif, before-after.png and metrics.json.

    Examples: meshopt style bunny.obj painting.jpg;
    meshopt style builtin:teapot starry.png --preset paper --device cuda;
    meshopt style bunny.obj painting.jpg --no-shape
    """
    from meshopt_cli.commands import style

    overrides = dict(iterations=iterations, batch_views=batch_views, image_size=image_size, texture_size=texture_size,
                     style_weight=style_weight, content_weight=content_weight, tv_weight=tv_weight,
                     vertex_lr=vertex_lr, texture_lr=texture_lr, seed=seed,
                     optimize_vertices=False if no_shape else None)
    options = style.StyleOptions(out=out, preset=preset, overrides=overrides, weights=weights, device=device,
                                 name=name, force=force, quiet=quiet, json=json_output,
                                 checkpoint_every=checkpoint_every, resume=resume)
    _exit_with(lambda: style.run(mesh, image, options))


@app.command("dream")
def dream_command(
    mesh: str = typer.Argument("builtin:teapot", help="Mesh file (.obj .ply .stl .off .glb .gltf) or builtin:NAME (default: builtin:teapot)."),
    preset: str = typer.Option("fast", help="Settings preset: fast, paper, texture-only (presets/dream/), or a .toml file."),
    layer: Optional[str] = typer.Option(None, help="GoogLeNet inception block whose activations grow: inception_3a ... inception_5b (default: from the preset, inception_4c)."),
    weights: str = typer.Option("imagenet", help="GoogLeNet weights: imagenet (torchvision's, cached), random (smoke tests), or a state-dict FILE."),
    iterations: Optional[int] = typer.Option(None, help="Adam steps (default: from the preset)."),
    batch_views: Optional[int] = typer.Option(None, help="Random views rendered per step (default: from the preset)."),
    image_size: Optional[int] = typer.Option(None, help="Rendered view size in pixels (default: from the preset)."),
    texture_size: Optional[int] = typer.Option(None, help="Texture cube size T per face (default: from the preset)."),
    length_weight: Optional[float] = typer.Option(None, help="Weight of the edge-length variance term (default: from the preset)."),
    init_bias: Optional[str] = typer.Option(None, help="R,G,B added to the initial textures, e.g. 0,0.5,0.5 (default: from the preset, 0,0,0)."),
    vertex_lr: Optional[float] = typer.Option(None, help="Adam learning rate of the vertices (default: from the preset)."),
    texture_lr: Optional[float] = typer.Option(None, help="Adam learning rate of the texture logits (default: from the preset)."),
    no_shape: bool = typer.Option(False, "--no-shape", help="Freeze the vertices: change the texture only."),
    seed: Optional[int] = typer.Option(None, help="Random seed of the views and backgrounds (default: from the preset)."),
    out: Path = typer.Option(Path("meshopt-out"), "--out", "-o", help="Output folder; the result goes to OUT/NAME/."),
    name: Optional[str] = typer.Option(None, help="Folder name of the result (default: MESH-LAYER)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing result."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or log lines."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    checkpoint_every: int = typer.Option(0, help="Save the optimization state to OUT/NAME.checkpoint.pt every N steps (and on Ctrl-C); 0: never."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/NAME.checkpoint.pt (same mesh and settings; replaces the interrupted result)."),
) -> None:
    """Grow the patterns a GoogLeNet layer sees onto a mesh's texture and shape (3D DeepDream).

    Writes OUT/NAME/dream.obj (+ .mtl, .png), turntable.gif, before-after.png and metrics.json.

    Examples: meshopt dream;
    meshopt dream bunny.obj --layer inception_4d --init-bias 0,0.5,0.5;
    meshopt dream builtin:teapot --preset paper --device cuda
    """
    from meshopt_cli.commands import dream

    overrides = dict(layer=layer, iterations=iterations, batch_views=batch_views, image_size=image_size,
                     texture_size=texture_size, length_weight=length_weight, init_bias=init_bias,
                     vertex_lr=vertex_lr, texture_lr=texture_lr, seed=seed,
                     optimize_vertices=False if no_shape else None)
    options = dream.DreamOptions(out=out, preset=preset, overrides=overrides, weights=weights, device=device,
                                 name=name, force=force, quiet=quiet, json=json_output,
                                 checkpoint_every=checkpoint_every, resume=resume)
    _exit_with(lambda: dream.run(mesh, options))


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
    app()


if __name__ == "__main__":
    main()
