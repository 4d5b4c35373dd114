"""The canonical face mesh, read from the landmarker bundle's geometry metadata.

``geometry_pipeline_metadata_landmarks.binarypb`` is a serialized
``mediapipe.face_geometry.GeometryPipelineMetadata`` protobuf message. mediapipe's Python
package has no classes for it, and deltaface does not depend on ``protobuf``, so this module
carries a small reader of the protobuf wire format and of just these messages
(field numbers from MediaPipe's ``geometry_pipeline_metadata.proto`` and ``mesh_3d.proto``)::

    GeometryPipelineMetadata { Mesh3d canonical_mesh = 1;
                               repeated WeightedLandmarkRef procrustes_landmark_basis = 2;
                               InputSource input_source = 3; }
    Mesh3d { VertexType vertex_type = 1; PrimitiveType primitive_type = 2;
             repeated float vertex_buffer = 3;    // x, y, z (cm), u, v per vertex
             repeated uint32 index_buffer = 4; }  // 3 vertex ids per triangle
    WeightedLandmarkRef { uint32 landmark_id = 1; float weight = 2; }

Canonical space: centimetres, x toward the face's own left (image right for a frontal face),
y up, z out of the face toward the viewer; the origin lies inside the head, behind the nose.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tracking.bundle import GEOMETRY_MEMBER, LandmarkerBundle, load_bundle
from tracking.errors import ModelLoadError
from tracking.observation import NUM_MESH_LANDMARKS

#: Triangles in the canonical mesh.
NUM_TRIANGLES = 898

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True, eq=False)
class CanonicalMesh:
    """MediaPipe's canonical face mesh, whose vertex ids are the landmark ids 0..467.

    Attributes:
        vertices: ``(468, 3)`` float32, x, y, z in centimetres in canonical space (see module doc).
        uv: ``(468, 2)`` float32 texture coordinates in [0, 1] as stored: u toward image right,
            v downward (forehead near v = 0.1, chin near v = 0.95), like image coordinates.
        triangles: ``(898, 3)`` int32 vertex ids, in MediaPipe's order; almost all (99%) wind
            counter-clockwise seen from the front (normals toward +z).
        procrustes_indices: ``(K,)`` int32 landmark ids of the weighted basis MediaPipe's
            geometry pipeline fits its pose to (chosen to follow head pose, not expression).
        procrustes_weights: ``(K,)`` float32 positive weights of those landmarks.
    """

    vertices: NDArray[np.float32]
    uv: NDArray[np.float32]
    triangles: NDArray[np.int32]
    procrustes_indices: NDArray[np.int32]
    procrustes_weights: NDArray[np.float32]

    def __post_init__(self) -> None:
        n = self.vertices.shape[0]
        if self.vertices.shape != (n, 3) or self.uv.shape != (n, 2):
            raise ValueError(f"canonical mesh: vertices {self.vertices.shape} and uv {self.uv.shape} disagree")
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3:
            raise ValueError(f"canonical mesh: triangles must be (T, 3), got {self.triangles.shape}")
        if self.procrustes_indices.shape != self.procrustes_weights.shape:
            raise ValueError("canonical mesh: procrustes indices and weights differ in length")
        for arr in (self.vertices, self.uv, self.triangles, self.procrustes_indices, self.procrustes_weights):
            arr.flags.writeable = False


def parse_geometry_metadata(data: bytes, source: str = "geometry metadata") -> CanonicalMesh:
    """Decode a serialized ``GeometryPipelineMetadata`` message.

    Args:
        data: the bytes of ``geometry_pipeline_metadata_landmarks.binarypb``.
        source: name used in error messages.

    Returns:
        The canonical mesh.

    Raises:
        ModelLoadError: the bytes are not a well-formed message of that type, or the mesh is
            not 468 vertices of 5 floats with triangles indexing them.
    """
    try:
        mesh_bytes: bytes | None = None
        basis_ids: list[int] = []
        basis_weights: list[float] = []
        for number, wire, value in _fields(data):
            if number == 1 and wire == _LEN:
                mesh_bytes = bytes(value)  # type: ignore[arg-type]
            elif number == 2 and wire == _LEN:
                lid, weight = _weighted_landmark(value)  # type: ignore[arg-type]
                basis_ids.append(lid)
                basis_weights.append(weight)
        if mesh_bytes is None:
            raise ValueError("no canonical_mesh field")
        vertex_buffer, index_buffer = _mesh3d(mesh_bytes)
    except (ValueError, IndexError, struct.error) as exc:
        raise ModelLoadError(f"{source}: malformed GeometryPipelineMetadata ({exc})") from exc

    if vertex_buffer.size != NUM_MESH_LANDMARKS * 5:
        raise ModelLoadError(
            f"{source}: expected {NUM_MESH_LANDMARKS} vertices of 5 floats, got {vertex_buffer.size} floats"
        )
    if index_buffer.size % 3 or index_buffer.size == 0:
        raise ModelLoadError(f"{source}: index buffer of {index_buffer.size} is not whole triangles")
    if index_buffer.max() >= NUM_MESH_LANDMARKS:
        raise ModelLoadError(f"{source}: triangle index {int(index_buffer.max())} out of range")
    ids = np.asarray(basis_ids, dtype=np.int32)
    if ids.size and (ids.max() >= NUM_MESH_LANDMARKS or ids.min() < 0):
        raise ModelLoadError(f"{source}: Procrustes landmark id out of range")
    vb = vertex_buffer.reshape(NUM_MESH_LANDMARKS, 5)
    return CanonicalMesh(
        vertices=np.ascontiguousarray(vb[:, :3], dtype=np.float32),
        uv=np.ascontiguousarray(vb[:, 3:], dtype=np.float32),
        triangles=index_buffer.astype(np.int32).reshape(-1, 3),
        procrustes_indices=ids,
        procrustes_weights=np.asarray(basis_weights, dtype=np.float32),
    )


_MESHES: dict[str, CanonicalMesh] = {}


def mesh_of_bundle(bundle: LandmarkerBundle) -> CanonicalMesh:
    """Return the canonical mesh of a loaded bundle (parsed once per bundle digest, then cached).

    Raises:
        ModelLoadError: the geometry metadata is missing or malformed.
    """
    mesh = _MESHES.get(bundle.sha256)
    if mesh is None:
        data = bundle.read_member(GEOMETRY_MEMBER)
        mesh = parse_geometry_metadata(data, source=f"{bundle.path}:{GEOMETRY_MEMBER}")
        _MESHES[bundle.sha256] = mesh
    return mesh


def canonical_mesh(bundle_path: str | os.PathLike[str] | None = None) -> CanonicalMesh:
    """Return the canonical mesh of the resolved bundle (see :func:`tracking.bundle.load_bundle`).

    Args:
        bundle_path: explicit bundle path, or None for ``DELTAFACE_LANDMARKER_BUNDLE`` or the
            packaged bundle.

    Raises:
        ModelLoadError: the bundle or its geometry metadata is missing or malformed.
    """
    return mesh_of_bundle(load_bundle(bundle_path))


# --- protobuf wire format -------------------------------------------------------------------


def _varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield ``(field_number, wire_type, value)``; LEN values are memoryviews, others ints."""
    view = memoryview(buf)
    pos = 0
    while pos < len(view):
        key, pos = _varint(view, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == _VARINT:
            value, pos = _varint(view, pos)
            yield number, wire, value
        elif wire == _FIXED64:
            if pos + 8 > len(view):
                raise ValueError("truncated fixed64")
            yield number, wire, int.from_bytes(view[pos : pos + 8], "little")
            pos += 8
        elif wire == _LEN:
            length, pos = _varint(view, pos)
            if pos + length > len(view):
                raise ValueError("truncated length-delimited field")
            yield number, wire, view[pos : pos + length]
            pos += length
        elif wire == _FIXED32:
            if pos + 4 > len(view):
                raise ValueError("truncated fixed32")
            yield number, wire, int.from_bytes(view[pos : pos + 4], "little")
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _f32(bits: int) -> float:
    return struct.unpack("<f", bits.to_bytes(4, "little"))[0]


def _weighted_landmark(buf: memoryview) -> tuple[int, float]:
    landmark_id, weight = 0, 0.0
    for number, wire, value in _fields(buf):
        if number == 1 and wire == _VARINT:
            landmark_id = int(value)  # type: ignore[arg-type]
        elif number == 2 and wire == _FIXED32:
            weight = _f32(int(value))  # type: ignore[arg-type]
    return landmark_id, weight


def _mesh3d(buf: bytes) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    floats: list[NDArray[np.float32]] = []
    indices: list[int] = []
    for number, wire, value in _fields(buf):
        if number == 3 and wire == _LEN:  # packed floats
            if len(value) % 4:  # type: ignore[arg-type]
                raise ValueError("packed vertex_buffer length not a multiple of 4")
            floats.append(np.frombuffer(value, dtype="<f4").astype(np.float32))  # type: ignore[call-overload]
        elif number == 3 and wire == _FIXED32:  # unpacked float
            floats.append(np.array([_f32(int(value))], dtype=np.float32))  # type: ignore[arg-type]
        elif number == 4 and wire == _LEN:  # packed uint32 varints
            sub = value
            pos = 0
            while pos < len(sub):  # type: ignore[arg-type]
                idx, pos = _varint(sub, pos)  # type: ignore[arg-type]
                indices.append(idx)
        elif number == 4 and wire == _VARINT:  # unpacked uint32
            indices.append(int(value))  # type: ignore[arg-type]
    vertex_buffer = np.concatenate(floats) if floats else np.zeros(0, dtype=np.float32)
    return vertex_buffer, np.asarray(indices, dtype=np.int64)
