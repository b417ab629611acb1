"""The `meshopt` command line: parses arguments and calls one function per command.

Heavy imports (torch, trimesh, torchvision) happen inside the commands so that
`meshopt --help` stays fast.
"""
from __future__ import annotations

from typing import Optional

import typer

from meshopt_cli import __version__

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
