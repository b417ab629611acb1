"""``meshopt render``: turntable GIFs (and PNG frames or a contact sheet) of meshes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from meshopt_cli import console


@dataclass
class RenderSettings:
    frames: int = 90
    elevation: float = 30.0
    distance: float = 2.732
    size: int = 256
    background: str = "white"
    texture_size: int = 4
    fps: float = 12.0
    png: bool = False
    sheet: bool = False
    force: bool = False
    quiet: bool = False


def output_paths(sources: list[str], out: Path) -> list[Path]:
    """The GIF path of each input: ``out`` itself for one input and a ``.gif`` path, else
    ``out/<name>.gif`` with repeated names made unique (``name-2.gif``, ...)."""
    if len(sources) == 1 and out.suffix.lower() == ".gif":
        return [out]
    taken: dict[str, int] = {}
    paths = []
    for source in sources:
        if source.startswith("builtin:"):
            name = source.split(":")[1] or "mesh"  # builtin:NAME[:ARGS]
        else:
            name = Path(source).stem or "mesh"
        count = taken.get(name, 0) + 1
        taken[name] = count
        paths.append(out / (f"{name}.gif" if count == 1 else f"{name}-{count}.gif"))
    return paths


def render_one(source: str, gif: Path, settings: RenderSettings, device, bar) -> list[Path]:
    """Render one mesh's turntable; returns the files written. Raises ValueError on bad input."""
    import torch

    from meshopt_cli.mesh import load_mesh, normalize_vertices
    from meshopt_cli.turntable import contact_sheet, parse_color, render_views, write_gif, write_png

    targets = [gif]
    frames_dir = gif.with_name(gif.stem + "-frames")
    sheet_path = gif.with_name(gif.stem + "-sheet.png")
    if settings.sheet:
        targets.append(sheet_path)
    if not settings.force:
        existing = [p for p in targets + ([frames_dir] if settings.png else []) if p.exists()]
        if existing:
            raise ValueError(f"{existing[0]} exists (use --force to overwrite)")
    background = parse_color(settings.background)  # checked up front by run()
    mesh = load_mesh(source)
    vertices, faces = mesh.to_torch(device)
    vertices = normalize_vertices(vertices)
    textures = torch.tensor(mesh.texture_cubes(settings.texture_size), device=device)
    task = bar.add_task(f"render {mesh.name}", total=settings.frames)
    images = render_views(
        vertices, faces, textures, frames=settings.frames, elevation=settings.elevation,
        distance=settings.distance, image_size=settings.size, background=background,
        progress=lambda n: bar.advance(task, n),
    )
    gif.parent.mkdir(parents=True, exist_ok=True)
    written = [write_gif(gif, images, settings.fps)]
    if settings.png:
        frames_dir.mkdir(parents=True, exist_ok=True)
        digits = len(str(settings.frames - 1))
        for k, image in enumerate(images):
            written.append(write_png(frames_dir / f"{k:0{digits}d}.png", image))
    if settings.sheet:
        written.append(write_png(sheet_path, contact_sheet(images)))
    return written


def run(sources: list[str], out: Path, settings: RenderSettings, device_spec: str) -> int:
    """Render every source; one failing input is reported and skipped. Exit status 0 or 1."""
    from meshopt_cli.devices import resolve_device

    from meshopt_cli.turntable import parse_color

    device = resolve_device(device_spec)
    if settings.frames < 1 or settings.size < 1 or settings.texture_size < 1:
        raise console.UsageError("--frames, --size and --texture-size must be positive")
    try:
        parse_color(settings.background)
    except ValueError as problem:
        raise console.UsageError(f"--background: {problem}") from None
    failures = 0
    with console.progress_bar(not settings.quiet) as bar:
        for source, gif in zip(sources, output_paths(sources, out)):
            try:
                written = render_one(source, gif, settings, device, bar)
            except ValueError as problem:
                console.error(str(problem))
                failures += 1
                continue
            console.info(f"wrote {written[0]}" + (f" (+{len(written) - 1} more files)" if len(written) > 1 else ""), settings.quiet)
    return 1 if failures else 0
