"""The differentiable renderer (torch only; knows nothing of the CLI).

API compatible with the paper's reference implementation::

    from meshopt_cli.render import Renderer
    renderer = Renderer(image_size=256)
    rgb, depth, alpha = renderer(vertices, faces, textures)
"""

from meshopt_cli.render.camera import DEFAULT_DISTANCE, get_points_from_angles, look, look_at, perspective, projection
from meshopt_cli.render.geometry import fill_back, vertices_to_faces
from meshopt_cli.render.lighting import lighting
from meshopt_cli.render.rasterize import (
    get_backend,
    rasterize,
    rasterize_depth,
    rasterize_rgbad,
    rasterize_silhouettes,
)
from meshopt_cli.render.renderer import Renderer

__all__ = [
    "DEFAULT_DISTANCE",
    "Renderer",
    "fill_back",
    "get_backend",
    "get_points_from_angles",
    "lighting",
    "look",
    "look_at",
    "perspective",
    "projection",
    "rasterize",
    "rasterize_depth",
    "rasterize_rgbad",
    "rasterize_silhouettes",
    "vertices_to_faces",
]
