"""A mesh's texture as a UV layout + one image, for the renderer's UV path.

``uv_texture(mesh)`` gives the mesh's own layout and image when it has one (``Mesh.has_uv_layout``:
every face has UVs into one textured material), at full resolution; otherwise a layout generated
by ``xatlas`` (the maintained binding trimesh uses as well) with the mesh's colours (materials'
``Kd``, vertex or face colours, several textured materials: whatever ``Mesh.texture_cubes`` reads)
baked into a new image. Meshes with several textured materials therefore get one new packed
atlas, resampled from their images through texture cubes; one textured material keeps its image.

Images are ``[H, W, 3]`` float32 in [0, 1], row 0 = the top of the file (v = 1), which is also
the renderer's ``texture_image`` convention (:mod:`meshopt_cli.render.uv`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The side of the image baked into a generated layout.
GENERATED_RESOLUTION = 512
#: Cube size T used to bake a mesh's colours into a generated layout.
BAKE_TEXTURE_SIZE = 8


@dataclass
class UVTexture:
    """uvs ``[F, 3, 2]`` float32 per face corner; image ``[H, W, 3]`` float32 (row 0 = top);
    ``generated``: the layout came from xatlas (the input had none)."""

    uvs: np.ndarray
    image: np.ndarray
    generated: bool


def generate_layout(vertices: np.ndarray, faces: np.ndarray, resolution: int = GENERATED_RESOLUTION) -> np.ndarray:
    """A UV layout ``[F, 3, 2]`` float32 in [0, 1] from xatlas (charts packed with a 2-texel
    gutter at ``resolution``); faces keep their order."""
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(np.ascontiguousarray(vertices, np.float32), np.ascontiguousarray(faces, np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = int(resolution)
    pack.padding = 2
    atlas.generate(pack_options=pack)
    _, indices, uvs = atlas[0]
    return np.asarray(uvs, np.float32)[np.asarray(indices, np.int64)]


def uv_texture(mesh, resolution: int | None = None) -> UVTexture:
    """The mesh's own layout and image (``resolution`` ignored), or a generated layout with its
    colours baked into a ``resolution`` (default :data:`GENERATED_RESOLUTION`) square image."""
    if mesh.has_uv_layout:
        return UVTexture(uvs=np.asarray(mesh.uvs, np.float32), image=np.asarray(mesh.texture, np.float32), generated=False)
    from meshopt_cli.mesh.bake import bake_to_uv_layout

    side = int(resolution or GENERATED_RESOLUTION)
    uvs = generate_layout(mesh.vertices, mesh.faces, side)
    t = 1 if mesh.uniform_faces else BAKE_TEXTURE_SIZE
    cubes = mesh.texture_cubes(t)
    base = np.full((side, side, 3), 0.5, np.float32)
    if mesh.uniform_faces and len(cubes):
        base[:] = cubes.reshape(-1, 3).mean(0)  # gutters take the mean colour: no grey seams when minified
    image = bake_to_uv_layout(cubes, uvs, (side, side), base)
    return UVTexture(uvs=uvs, image=np.ascontiguousarray(image, np.float32), generated=True)


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[H, W, 3]`` float32 resized to ``height x width`` (bilinear, antialiased when shrinking)."""
    import torch

    if image.shape[:2] == (height, width):
        return np.asarray(image, np.float32)
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
    shrink = height < image.shape[0] or width < image.shape[1]
    y = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
    return y[0].permute(1, 2, 0).clamp(0, 1).numpy()


def layout_mask(uvs: np.ndarray, height: int, width: int, dilate: int = 2) -> np.ndarray:
    """``[H, W]`` bool: the texels of an ``height x width`` image that the UV triangles ``uvs
    [F, 3, 2]`` cover (wrapped with ``repeat``), grown by ``dilate`` texels: what a render can read
    at full resolution, bilinear taps included (the mip levels' box footprints reach further, but
    only through averages)."""
    from meshopt_cli.mesh.bake import bake_to_uv_layout

    ones = np.ones((len(uvs), 1, 1, 1, 3), np.float32)
    covered = bake_to_uv_layout(ones, uvs, (height, width), np.zeros((height, width, 3), np.float32), dilate=dilate)
    return covered[..., 0] > 0.5
