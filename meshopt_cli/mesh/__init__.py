"""Mesh data: OBJ/MTL I/O, texture cubes <-> UV images, other formats via trimesh, built-in shapes.

Public API::

    load_obj(path, normalization=True, texture_size=4, load_texture=False, texture_wrapping="repeat")
        -> (vertices [V,3] float32, faces [F,3] int64[, textures [F,T,T,T,3] float32])   (torch)
    load_mesh(path_or_builtin, *, textures=True) -> Mesh   # .obj .ply .stl .off .glb .gltf, builtin:NAME
    Mesh.texture_cubes(texture_size=4, wrapping="repeat") -> [F,T,T,T,3] float32 numpy
    Mesh.to_torch() -> (vertices, faces)
    save_obj(path, vertices, faces, textures=None, *, uvs=None, image_size=None, base_image=None)
        -> [written paths]                       # .obj (+ .mtl + .png) or .glb, atomic
    save_mesh(path, mesh, textures=None, vertices=None)   # own UV layout when the mesh has one
    uv_texture(mesh, resolution=None) -> UVTexture(uvs [F,3,2], image [H,W,3], generated)  # own or xatlas layout
    save_uv_mesh(path, vertices, faces, uvs, image)      # a UV layout + image as they are (.obj bundle or .glb)
    builtin_shape("builtin:teapot") -> (vertices [V,3] float32, faces [F,3] int64)
    box_normalization(vertices) -> (centre [3], scale)   # bounding box into [-1, 1] by its longest side
    normalize_vertices(vertices) -> vertices             # the same, torch, the reference's float32 steps
    MeshError                                   # ValueError, one line "<file>: <problem>"

Modules: ``objparse`` (vectorised OBJ records), ``material`` (MTL + images), ``cubes`` (texture
cube sampling rules), ``bake`` (cubes -> own UV layout / per-face atlas), ``core`` (``Mesh``),
``mesh`` (``load_mesh``), ``obj`` (``load_obj``), ``normalize`` (the [-1, 1] frame), ``save``
(writers), ``uvtexture`` (layout + image for the UV renderer, xatlas), ``foreign`` (trimesh formats), ``builtins`` + ``teapot_data`` (shapes), ``topology``
(weld / winding checks), ``atomic``.
"""

from meshopt_cli.mesh.builtins import BUILTIN_NAMES, builtin_shape
from meshopt_cli.mesh.cubes import WRAPPINGS, cube_weights
from meshopt_cli.mesh.errors import MeshError
from meshopt_cli.mesh.material import Material
from meshopt_cli.mesh.mesh import SUPPORTED_SUFFIXES, Mesh, load_mesh
from meshopt_cli.mesh.normalize import box_normalization, normalize_box, normalize_vertices
from meshopt_cli.mesh.obj import load_obj
from meshopt_cli.mesh.objparse import MAX_FACES
from meshopt_cli.mesh.save import export_glb, save_mesh, save_obj, save_uv_mesh
from meshopt_cli.mesh.uvtexture import UVTexture, generate_layout, uv_texture

__all__ = [
    "BUILTIN_NAMES",
    "MAX_FACES",
    "SUPPORTED_SUFFIXES",
    "WRAPPINGS",
    "Material",
    "Mesh",
    "MeshError",
    "box_normalization",
    "builtin_shape",
    "cube_weights",
    "export_glb",
    "load_mesh",
    "load_obj",
    "normalize_box",
    "normalize_vertices",
    "save_mesh",
    "save_obj",
    "save_uv_mesh",
    "UVTexture",
    "generate_layout",
    "uv_texture",
]
