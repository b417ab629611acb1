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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
