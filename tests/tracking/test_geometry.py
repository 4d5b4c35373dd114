"""The canonical face mesh read from the bundle with the small protobuf reader."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tracking.bundle import GEOMETRY_MEMBER, read_bundle_member
from tracking.errors import ModelLoadError
from tracking.geometry import NUM_TRIANGLES, CanonicalMesh, canonical_mesh, parse_geometry_metadata

#: Largest distance (cm) between a vertex mirrored in x and the nearest vertex.
SYMMETRY_TOL_CM = 0.01


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint(number << 3 | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def _encode(vertices: np.ndarray, triangles: np.ndarray, ids: list[int], weights: list[float], packed: bool) -> bytes:
    """A GeometryPipelineMetadata message, packed or unpacked repeated fields, fields in odd order."""
    floats = np.asarray(vertices, dtype="<f4").ravel()
    mesh = _field(1, 0, _varint(0)) + _field(2, 0, _varint(0))
    if packed:
        mesh += _field(3, 2, floats.tobytes())
        mesh += _field(4, 2, b"".join(_varint(int(i)) for i in np.ravel(triangles)))
    else:
        mesh += b"".join(_field(3, 5, struct.pack("<f", f)) for f in floats)
        mesh += b"".join(_field(4, 0, _varint(int(i))) for i in np.ravel(triangles))
    basis = b"".join(
        _field(2, 2, _field(1, 0, _varint(i)) + _field(2, 5, struct.pack("<f", w))) for i, w in zip(ids, weights)
    )
    return _field(3, 0, _varint(1)) + basis + _field(1, 2, mesh)


def test_counts_dtypes_and_cache() -> None:
    mesh = canonical_mesh()
    assert mesh.vertices.shape == (468, 3) and mesh.vertices.dtype == np.float32
    assert mesh.uv.shape == (468, 2) and mesh.uv.dtype == np.float32
    assert mesh.triangles.shape == (NUM_TRIANGLES, 3) == (898, 3) and mesh.triangles.dtype == np.int32
    assert mesh.procrustes_indices.shape == mesh.procrustes_weights.shape
    assert len(mesh.procrustes_indices) > 10 and np.all(mesh.procrustes_weights > 0)
    assert len(np.unique(mesh.triangles)) == 468  # every vertex is in some triangle
    assert canonical_mesh() is mesh
    with pytest.raises(ValueError):
        mesh.vertices[0, 0] = 1.0  # shared cached arrays are read-only


def test_mesh_is_a_plausible_face() -> None:
    mesh = canonical_mesh()
    v = mesh.vertices
    mirrored = v * np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    nearest = np.min(np.linalg.norm(mirrored[:, None, :] - v[None, :, :], axis=2), axis=1)
    assert nearest.max() < SYMMETRY_TOL_CM
    assert np.all((mesh.uv >= 0.0) & (mesh.uv <= 1.0))
    # Landmark semantics: nose tip (1) in front, forehead (10) above the chin (152), the
    # subject's right eye corner (33) at -x (image left), a face about 15 cm wide.
    assert v[1, 2] == v[:, 2].max() or v[1, 2] > np.percentile(v[:, 2], 99)
    assert v[10, 1] > v[152, 1]
    assert v[33, 0] < 0 < v[263, 0]
    assert 12.0 < v[:, 0].max() - v[:, 0].min() < 20.0
    assert mesh.uv[10, 1] < mesh.uv[152, 1]  # v grows downward like image rows


@pytest.mark.parametrize("packed", [True, False])
def test_reader_round_trips_both_encodings(packed: bool) -> None:
    rng = np.random.default_rng(0)
    vb = rng.normal(size=(468, 5)).astype(np.float32)
    tris = rng.integers(0, 468, size=(7, 3))
    data = _encode(vb, tris, [4, 6, 300], [0.5, 0.25, 1.5], packed)
    mesh = parse_geometry_metadata(data)
    np.testing.assert_array_equal(mesh.vertices, vb[:, :3])
    np.testing.assert_array_equal(mesh.uv, vb[:, 3:])
    np.testing.assert_array_equal(mesh.triangles, tris)
    np.testing.assert_array_equal(mesh.procrustes_indices, [4, 6, 300])
    np.testing.assert_allclose(mesh.procrustes_weights, [0.5, 0.25, 1.5])


def test_reader_matches_bundle_bytes() -> None:
    mesh = parse_geometry_metadata(read_bundle_member(GEOMETRY_MEMBER))
    assert isinstance(mesh, CanonicalMesh)
    np.testing.assert_array_equal(mesh.vertices, canonical_mesh().vertices)


@pytest.mark.parametrize(
    "data",
    [
        b"",  # no canonical mesh
        b"\x0a\xff\xff\xff",  # length past the end
        b"\x0f\x00",  # wire type 7
        _field(1, 2, _field(3, 2, b"\x00" * 40)),  # 10 floats, not 468 vertices
    ],
)
def test_malformed_metadata_is_a_model_load_error(data: bytes) -> None:
    with pytest.raises(ModelLoadError) as exc:
        parse_geometry_metadata(data, source="test.binarypb")
    assert "test.binarypb" in str(exc.value) and "\n" not in str(exc.value)
