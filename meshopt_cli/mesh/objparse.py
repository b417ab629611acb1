"""Vectorised parser of the geometry records of a Wavefront OBJ file (``v``, ``vt``, ``f``,
``usemtl``, ``mtllib``).

Vertices stay exactly the file's: one per ``v`` record, in file order, shared by every face that
uses it, also across UV seams (UVs are kept per face corner). Polygons are fan-triangulated
(``f a b c d`` -> ``(a, b, c), (a, c, d)``); all objects and groups become one mesh. Indices may be
negative (relative to the records read so far) and may use the ``v``, ``v/vt``, ``v//vn`` and
``v/vt/vn`` forms.

The file is parsed with numpy on the whole byte buffer (no per-line Python loop over vertex and
face records), so a 1 M-face file loads in about a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from meshopt_cli.mesh.errors import MeshError

MAX_FACES = 5_000_000
"""Refuse meshes with more triangles than this (after fan triangulation)."""

_SPACE, _NL, _SLASH = 32, 10, 47


@dataclass
class ObjRecords:
    """What an OBJ file says about geometry, materials and UVs.

    vertices:       [V, 3] float64, the ``v`` records in file order (extra components ignored)
    vertex_colors:  [V, 3] float64 in [0, 1] when every ``v`` record carries ``x y z r g b``, else None
    faces:          [F, 3] int64, 0-based vertex indices, fan-triangulated, in file order
    uv_coords:      [VT, 2] float64, the ``vt`` records (u, v); a missing v is 0
    face_uv:        [F, 3] int64, 0-based index into uv_coords per face corner; -1 where the
                    corner has no (or an invalid) ``vt`` reference
    bad_uv_refs:    number of corners whose ``vt`` reference pointed outside the ``vt`` list
    face_material:  [F] int32, index into material_names (the active ``usemtl``), -1 for none
    material_names: material names in order of first ``usemtl``
    mtllibs:        the arguments of the ``mtllib`` records, in file order
    vertex_lines:   [V] int64, 1-based line number of each ``v`` record (for error messages)
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv_coords: np.ndarray
    face_uv: np.ndarray
    face_material: np.ndarray
    material_names: list[str] = field(default_factory=list)
    mtllibs: list[str] = field(default_factory=list)
    vertex_colors: np.ndarray | None = None
    bad_uv_refs: int = 0
    vertex_lines: np.ndarray | None = None


def _normalise_text(data: bytes) -> bytes:
    """Tabs -> spaces, CR/CRLF -> LF, line continuations joined, leading blanks stripped,
    final newline ensured. Keeps one output line per input line (except continuations).
    Checks use single-byte scans and numpy (multi-byte ``in`` is slow on 100 MB)."""
    if data.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte order mark
        data = data[3:]
    if b"\t" in data or b"\x0b" in data or b"\x0c" in data:
        data = data.replace(b"\t", b" ").replace(b"\x0b", b" ").replace(b"\x0c", b" ")
    if b"\r" in data:  # CRLF -> LF; CR-only (old Mac) files: CR -> LF
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b" " if b"\n" in data else b"\n")
    if not data.endswith(b"\n"):
        data += b"\n"
    buf = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(buf == _NL)
    if b"\\" in data and np.any(buf[np.maximum(newlines - 1, 0)] == ord("\\")):
        data = data.replace(b"\\\n", b" ")
        buf = np.frombuffer(data, np.uint8)
        newlines = np.flatnonzero(buf == _NL)
    if buf[0] == _SPACE or np.any(buf[np.minimum(newlines[:-1] + 1, len(buf) - 1)] == _SPACE):
        data = b"\n".join(line.lstrip(b" ") for line in data.split(b"\n"))
        buf = np.frombuffer(data, np.uint8)
        newlines = np.flatnonzero(buf == _NL)
    return data, buf, newlines


def _select_lines(
    buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray, mask: np.ndarray, tag_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """The bytes of the lines selected by ``mask`` (each ending in a newline), concatenated, with
    their first ``tag_len`` bytes (the record tag) blanked; and the start offset of each line in
    that buffer. Copies runs of consecutive selected lines as slices (files keep their ``v`` and
    ``f`` records in blocks), so no per-byte mask is needed. Returns a writable uint8 array."""
    index = np.flatnonzero(mask)
    sel = lengths[index] + 1
    offs = np.cumsum(sel) - sel
    if len(index) == 0:
        return np.zeros(0, np.uint8), offs
    breaks = np.flatnonzero(np.diff(index) != 1)
    first = np.concatenate([[0], breaks + 1])
    last = np.concatenate([breaks, [len(index) - 1]])
    if len(first) <= 100_000:
        lo = starts[index[first]]
        hi = starts[index[last]] + lengths[index[last]] + 1
        region = np.concatenate([buf[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)])
    else:  # heavily interleaved records: one byte mask
        region = buf[np.repeat(mask, lengths + 1)]
    for k in range(tag_len):
        region[offs + k] = _SPACE
    if (region == ord("#")).any():  # trailing comments (rare): cut them off
        text = region.tobytes().split(b"\n")[:-1]
        region = np.frombuffer(b"".join(line.split(b"#", 1)[0] + b"\n" for line in text), np.uint8).copy()
        offs = _line_starts(region)
    return region, offs


def _line_starts(region: np.ndarray) -> np.ndarray:
    newlines = np.flatnonzero(region == _NL)
    starts = np.empty(len(newlines), np.int64)
    if len(newlines):
        starts[0] = 0
        starts[1:] = newlines[:-1] + 1
    return starts


def _token_starts(region: np.ndarray, separators=(_SPACE,)) -> np.ndarray:
    """Boolean mask of the bytes that start a token: not blank (nor a listed separator) and
    preceded by a blank or separator. The first byte of every line is a blanked tag."""
    sep = region <= _SPACE
    for extra in separators:
        if extra != _SPACE:
            sep |= region == extra
    start = np.zeros(len(region), bool)
    start[1:] = ~sep[1:] & sep[:-1]
    return start


def _count_per_line(mask: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Number of True bytes of ``mask`` in each line (lines start at ``starts``)."""
    positions = np.flatnonzero(mask)
    return np.diff(np.searchsorted(positions, starts), append=len(positions))


def _parse_numbers(region: np.ndarray, dtype) -> np.ndarray:
    """All whitespace-separated numbers of ``region``; raises ValueError on a bad token."""
    if len(region) == 0:
        return np.zeros(0, dtype)
    return np.fromstring(region.tobytes(), dtype=dtype, sep=" ")


def _first_bad_line(
    data: bytes, line_starts: np.ndarray, line_ends: np.ndarray, line_ids: np.ndarray, tag_len: int, kind: str
) -> int:
    """Slow path, only for error messages: the 1-based number of the first unparseable line."""
    for idx in line_ids:
        text = data[line_starts[idx] + tag_len : line_ends[idx]]
        for token in text.split():
            parts = token.split(b"/") if kind == "f" else [token]
            try:
                for part in parts:
                    if part:
                        (int if kind == "f" else float)(part)
            except ValueError:
                return int(idx) + 1
    return 0


def _per_line_columns(values: np.ndarray, counts: np.ndarray, ncols: int) -> np.ndarray:
    """First ``ncols`` numbers of every line as a [lines, ncols] array (lines have >= ncols)."""
    if len(counts) and np.all(counts == counts[0]):
        return values.reshape(len(counts), counts[0])[:, :ncols]
    first = np.cumsum(counts) - counts
    return values[first[:, None] + np.arange(ncols)[None, :]]


def _resolve(indices: np.ndarray, count_before: np.ndarray) -> np.ndarray:
    """OBJ 1-based / negative-relative indices -> 0-based (0 stays invalid: returns -1 - n)."""
    out = indices - 1
    neg = indices < 0
    if neg.any():
        out[neg] = count_before[neg] + indices[neg]
    return out


def parse_obj(data: bytes, source: str, max_faces: int = MAX_FACES, uvs: bool = True) -> ObjRecords:
    """Parse the bytes of an OBJ file. ``source`` names the file in error messages. With
    ``uvs=False`` the ``vt`` records are skipped (geometry only; ``face_uv`` is all -1).

    Raises MeshError (one line naming ``source``) for binary data, unparseable records, face indices
    out of range, no vertices or no faces, and more than ``max_faces`` triangles.
    """
    if b"\x00" in data:
        raise MeshError(source, "binary data, not a text OBJ file")
    data, buf, newlines = _normalise_text(data)
    starts = np.empty(len(newlines), np.int64)
    starts[0] = 0
    starts[1:] = newlines[:-1] + 1
    lengths = newlines - starts
    last = len(buf) - 1
    c0 = buf[starts]
    c1 = buf[np.minimum(starts + 1, last)]
    c2 = buf[np.minimum(starts + 2, last)]
    is_v = (c0 == ord("v")) & (c1 == _SPACE)
    is_vt = (c0 == ord("v")) & (c1 == ord("t")) & (c2 == _SPACE)
    is_f = (c0 == ord("f")) & (c1 == _SPACE)
    v_lines = np.flatnonzero(is_v)
    vt_lines = np.flatnonzero(is_vt)
    f_lines = np.flatnonzero(is_f)

    # --- usemtl / mtllib (few lines; plain Python) ---
    material_names: list[str] = []
    material_ids: dict[str, int] = {}
    usemtl_lines: list[int] = []
    usemtl_ids: list[int] = []
    mtllibs: list[str] = []
    for idx in np.flatnonzero(((c0 == ord("u")) | (c0 == ord("m"))) & (lengths >= 6)):
        parts = data[starts[idx] : newlines[idx]].decode("utf-8", "surrogateescape").split(None, 1)
        if not parts:
            continue
        rest = parts[1].strip() if len(parts) > 1 else ""
        if parts[0] == "usemtl":
            if rest not in material_ids:
                material_ids[rest] = len(material_names)
                material_names.append(rest)
            usemtl_lines.append(int(idx))
            usemtl_ids.append(material_ids[rest])
        elif parts[0] == "mtllib" and rest:
            mtllibs.append(rest)

    if len(v_lines) == 0 and len(f_lines) == 0:
        raise MeshError(source, "no vertex or face records: not an OBJ mesh")
    if len(v_lines) == 0:
        raise MeshError(source, "no vertices ('v' records)")
    if len(f_lines) > max_faces:  # every face record gives at least one triangle: fail early
        raise MeshError(source, f"too many faces (over {max_faces:,} face records; the limit is {max_faces:,} triangles)")

    # --- v ---
    region, offs = _select_lines(buf, starts, lengths, is_v, 1)
    counts = _count_per_line(_token_starts(region), offs)
    try:
        values = _parse_numbers(region, np.float64)
        if len(values) != int(counts.sum()):
            raise ValueError
    except ValueError:
        line = _first_bad_line(data, starts, newlines, v_lines, 1, "v")
        raise MeshError(source, f"unparseable vertex record on line {line}") from None
    short = np.flatnonzero(counts < 3)
    if len(short):
        line = v_lines[short[0]] + 1
        raise MeshError(source, f"vertex record with fewer than 3 coordinates on line {line}")
    vertices = _per_line_columns(values, counts, 3).astype(np.float64, copy=True)
    vertex_colors = None
    if np.all(counts >= 6):
        first = np.cumsum(counts) - counts
        vertex_colors = values[first[:, None] + np.arange(3, 6)[None, :]]
        if np.nanmax(vertex_colors, initial=0.0) > 1.0:
            vertex_colors = vertex_colors / 255.0
        vertex_colors = np.clip(vertex_colors, 0.0, 1.0)
    del region, values

    # --- vt ---
    uv_coords = np.zeros((0, 2), np.float64)
    if not uvs:
        vt_lines = vt_lines[:0]
    if len(vt_lines):
        region, offs = _select_lines(buf, starts, lengths, is_vt, 2)
        counts = _count_per_line(_token_starts(region), offs)
        try:
            values = _parse_numbers(region, np.float64)
            if len(values) != int(counts.sum()):
                raise ValueError
        except ValueError:
            line = _first_bad_line(data, starts, newlines, vt_lines, 2, "v")
            raise MeshError(source, f"unparseable texture coordinate record on line {line}") from None
        if np.any(counts < 1):
            line = vt_lines[np.flatnonzero(counts < 1)[0]] + 1
            raise MeshError(source, f"empty texture coordinate record on line {line}")
        if np.all(counts >= 2):
            uv_coords = _per_line_columns(values, counts, 2).astype(np.float64, copy=True)
        else:
            first = np.cumsum(counts) - counts
            uv_coords = np.zeros((len(vt_lines), 2), np.float64)
            uv_coords[:, 0] = values[first]
            two = counts >= 2
            uv_coords[two, 1] = values[first[two] + 1]
        del region, values

    # --- f ---
    if len(f_lines) == 0:
        raise MeshError(source, "no faces ('f' records)")
    region, offs = _select_lines(buf, starts, lengths, is_f, 1)
    slashes = np.flatnonzero(region == _SLASH)
    if len(slashes):
        after = region[slashes + 1]
        if np.any((after == _SLASH) | (after <= _SPACE)):  # empty components: 1//3, 1/ , 1/\n
            raw = region.tobytes().replace(b"//", b"/0/").replace(b"/ ", b"/0 ").replace(b"/\n", b"/0\n")
            region = np.frombuffer(raw, np.uint8).copy()
            del raw
            slashes = np.flatnonzero(region == _SLASH)
            offs = _line_starts(region)
    starts_mask = _token_starts(region, (_SPACE, _SLASH))
    number_pos = np.flatnonzero(starts_mask)
    starts_mask[slashes + 1] = False  # now: numbers that start a corner (not preceded by '/')
    per_line = _count_per_line(starts_mask, offs)
    is_first = starts_mask[number_pos]
    del starts_mask, number_pos
    region[slashes] = _SPACE
    del slashes
    try:
        values = _parse_numbers(region, np.int64)
        if len(values) != len(is_first):
            raise ValueError
    except ValueError:
        line = _first_bad_line(data, starts, newlines, f_lines, 1, "f")
        raise MeshError(source, f"unparseable face record on line {line}") from None
    del region
    first = np.flatnonzero(is_first)
    v_ref = values[first]
    comps = np.diff(first, append=len(values))
    vt_ref = np.where(comps >= 2, values[np.minimum(first + 1, len(values) - 1)], 0)
    del values, first, comps, is_first
    tok_line = np.repeat(np.arange(len(f_lines)), per_line)

    ntri = np.maximum(per_line - 2, 0)
    num_faces = int(ntri.sum())
    if num_faces > max_faces:
        raise MeshError(source, f"too many faces ({num_faces:,} triangles; the limit is {max_faces:,})")
    if num_faces == 0:
        raise MeshError(source, "no faces with 3 or more vertices")

    zero = np.flatnonzero(v_ref == 0)
    if len(zero):
        line = f_lines[tok_line[zero[0]]] + 1
        raise MeshError(source, f"face index 0 on line {line} (OBJ indices start at 1)")
    fline_of_tok = f_lines[tok_line]
    nv_before = np.searchsorted(v_lines, fline_of_tok) if np.any(v_ref < 0) else None
    v_idx = _resolve(v_ref, nv_before)
    bad = np.flatnonzero((v_idx < 0) | (v_idx >= len(v_lines)))
    if len(bad):
        k = bad[0]
        raise MeshError(
            source,
            f"face index {int(v_ref[k])} out of range on line {fline_of_tok[k] + 1} (the file has {len(v_lines)} vertices)",
        )
    if len(vt_lines) and np.any(vt_ref != 0):
        nvt_before = np.searchsorted(vt_lines, fline_of_tok) if np.any(vt_ref < 0) else None
        vt_idx = _resolve(vt_ref, nvt_before)
        invalid = (vt_idx < 0) | (vt_idx >= len(vt_lines))
        bad_uv_refs = int(np.count_nonzero(invalid & (vt_ref != 0)))
        vt_idx[invalid] = -1
    else:
        bad_uv_refs = int(np.count_nonzero(vt_ref != 0)) if uvs else 0
        vt_idx = np.full(len(vt_ref), -1, np.int64)
    del vt_ref, v_ref

    # fan triangulation: line l with n tokens starting at token t gives (t, t+k, t+k+1), k=1..n-2
    line_first = np.cumsum(per_line) - per_line
    tri_line = np.repeat(np.arange(len(f_lines)), ntri)
    k = np.arange(num_faces) - np.repeat(np.cumsum(ntri) - ntri, ntri) + 1
    corner0 = line_first[tri_line]
    corner1 = corner0 + k
    faces = np.stack([v_idx[corner0], v_idx[corner1], v_idx[corner1 + 1]], axis=1)
    face_uv = np.stack([vt_idx[corner0], vt_idx[corner1], vt_idx[corner1 + 1]], axis=1)

    if usemtl_lines:
        which = np.searchsorted(np.asarray(usemtl_lines), f_lines, side="right") - 1
        line_material = np.where(which >= 0, np.asarray(usemtl_ids, np.int32)[np.maximum(which, 0)], -1)
        face_material = line_material[tri_line].astype(np.int32)
    else:
        face_material = np.full(num_faces, -1, np.int32)

    return ObjRecords(
        vertices=vertices,
        faces=faces,
        uv_coords=uv_coords,
        face_uv=face_uv,
        face_material=face_material,
        material_names=material_names,
        mtllibs=mtllibs,
        vertex_colors=vertex_colors,
        bad_uv_refs=bad_uv_refs,
        vertex_lines=v_lines + 1,
    )
