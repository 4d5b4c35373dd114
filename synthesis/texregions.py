"""The face regions whose texture can be borrowed from other frames (``synthesis.exemplars``):
which mesh vertices each replaces, where its colour is matched, and how its state is weighed.

Regions: the eyes and the mouth (a blink, a smile or a jaw opening changes what they show), the
cheeks (a head turn toward the camera shows cheek skin that the frame has only foreshortened, or
hidden behind the nose), and the whole face (swap repair rebuilds a failed frame from another).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from synthesis import regions as rg
from synthesis.uvmap import grow, region_triangles, triangles
from tracking.geometry import canonical_mesh

@dataclass(frozen=True)
class Region:
    """A face region whose texture can be borrowed.

    Attributes:
        name: ``"eye_left"``, ``"eye_right"`` or ``"mouth"``.
        core: mesh vertex ids whose triangles are replaced (alpha 1 inside, feathered at the edge).
        outer: a larger vertex set; the band between core and outer is where the colour is matched.
        feature_scale: per state feature, the difference that counts as one unit (candidates must
            be within one unit of the target in every weighed feature).
        need_range: per feature, the change (after minus before, in feature units) from which
            texture is needed at all, and from which it is needed fully.
        warp_limit: per feature, the most change a warp alone may make where no exemplar exists
            (the edit is clamped to it); inf for none.
        blendshapes: expression scores near the region, compared between target and candidate.
        need_direction: per feature, +1 or -1 when only a change that way needs texture (a cheek
            turning toward the camera: its facing angle falls), 0 for both; empty: all 0.
        fade: the region has no discrete states (skin, not an eye that is open or closed): its
            texture fades in and out over runs of frames instead of switching on in one frame,
            and short gaps without an exemplar keep the one beside them (an eye's or a mouth's
            half-weight blend would show both states at once).
        turn: the region is revealed by a head turn: an exemplar must be turned nearer the
            target pose than the edited frame (``synthesis.exemplars.TURN_GAIN_DEG``).
        run_need: 0, or a change of the first feature (feature units' own measure, e.g. IOD):
            once one frame of a run needs texture (consecutive frames whose first feature the
            edit changes the same way), every frame of the run does, fully from this change on
            (``synthesis.exemplars.run_need``). A mouth opening eases in through changes the
            warp alone would show as stretched lips or taller teeth, and a borrowed mouth
            switched in where the need starts shows its gap all at once.
    """

    name: str
    core: tuple[int, ...]
    outer: tuple[int, ...]
    feature_scale: tuple[float, ...]
    need_range: tuple[tuple[float, float], ...]
    warp_limit: tuple[float, ...]
    blendshapes: tuple[str, ...] = ()
    need_direction: tuple[int, ...] = ()
    fade: bool = False
    turn: bool = False
    run_need: float = 0.0

    @property
    def core_triangles(self) -> NDArray[np.intp]:
        return region_triangles(self.core)

    @property
    def outer_triangles(self) -> NDArray[np.intp]:
        return region_triangles(self.outer)

    @property
    def core_lookup(self) -> NDArray[np.bool_]:
        """``(1 + 898,)`` bool: indexed by a triangle map plus one, whether the triangle is a
        core triangle (entry 0: no triangle)."""
        return _core_lookup(self.core)


@functools.lru_cache(maxsize=16)
def _core_lookup(core: tuple[int, ...]) -> NDArray[np.bool_]:
    lut = np.zeros(1 + len(triangles()), bool)
    lut[1 + region_triangles(core)] = True
    lut.flags.writeable = False
    return lut


def _eye_region(side: str) -> Region:
    contour = rg.LEFT_EYE if side == "left" else rg.RIGHT_EYE
    s = "Left" if side == "left" else "Right"
    return Region(
        name=f"eye_{side}", core=grow(contour, 2), outer=grow(contour, 4),
        feature_scale=(0.25, 0.06, 0.08), need_range=((0.1, 0.35), (0.04, 0.12), (0.05, 0.15)),
        warp_limit=(0.5, np.inf, np.inf),
        blendshapes=(f"eyeSquint{s}", f"cheekSquint{s}", f"browDown{s}", f"browOuterUp{s}", "browInnerUp"),
    )


def _cheek_core(side: str) -> tuple[int, ...]:
    """Mesh vertices of one cheek: beside the nose (canonical ``|x| > CHEEK_INNER_X``), from 1.5 cm
    below the mouth corners' height to just under the eye, clear of the eye (two rings), the lips
    (one ring), the nose and the face oval itself (the silhouette: the colour is matched inside it)."""
    v = canonical_mesh().vertices
    sign = 1.0 if side == "left" else -1.0  # canonical x > 0 is the subject's left
    eye = rg.LEFT_EYE if side == "left" else rg.RIGHT_EYE
    low = float(v[rg.MOUTH_CORNERS_OUTER[0], 1])
    high = float(v[list(eye), 1].min())
    clear = set(grow(eye, 2)) | set(grow(rg.LIPS, 1)) | set(rg.FACE_OVAL) | set(rg.NOSE)
    return tuple(i for i in range(468) if sign * v[i, 0] > CHEEK_INNER_X and low - 1.5 < v[i, 1] < high - 0.5
                 and i not in clear)


def _cheek_region(side: str) -> Region:
    s = "Left" if side == "left" else "Right"
    core = _cheek_core(side)
    return Region(
        name=f"cheek_{side}", core=core, outer=grow(core, 2),
        feature_scale=(6.0,), need_range=((4.0, 12.0),), warp_limit=(np.inf,),
        blendshapes=(f"mouthSmile{s}", f"cheekSquint{s}", "cheekPuff", f"mouthStretch{s}"),
        need_direction=(-1,), fade=True, turn=True,
    )


#: The inner-lip change (IOD) from which a frame of a mouth opening (or closing) that borrows a
#: mouth somewhere borrows one fully (:attr:`Region.run_need`): a sixth of the gap's feature scale,
#: about the landmarker's own noise on the lips (``plugin.texture_stage.SOURCE_OPENING_TOL``).
MOUTH_RUN_NEED = 0.01

#: Canonical |x| (cm) beyond which a vertex can belong to a cheek (the nose's wings end at 1.6).
CHEEK_INNER_X = 2.0

#: The regions, by name.
REGIONS: dict[str, Region] = {
    "eye_left": _eye_region("left"),
    "eye_right": _eye_region("right"),
    # the gap is needed fully from 0.05 IOD, so that an exemplar goes in whole (need 0.5,
    # ``plugin.texture_stage.TextureConfig.full_weight_need``) from 0.04: about what jaw_open opens
    # at its range. An open mouth's borrowed gap held at part weight over the warp's stretched
    # teeth shows as a grey band (the astronaut's jaw_open 0.4, 0.044 IOD, went in at 0.4 weight
    # when this was 0.1)
    "mouth": Region(
        name="mouth", core=grow(rg.LIPS, 1), outer=grow(rg.LIPS, 3),
        feature_scale=(0.06, 0.12), need_range=((0.03, 0.05), (0.06, 0.2)), warp_limit=(0.05, np.inf),
        blendshapes=("mouthSmileLeft", "mouthSmileRight", "mouthFunnel", "mouthPucker", "mouthRollLower",
                     "mouthRollUpper", "mouthShrugUpper"),
        run_need=MOUTH_RUN_NEED,
    ),
    "cheek_left": _cheek_region("left"),
    "cheek_right": _cheek_region("right"),
}
#: The whole face (for rebuilding a failed frame from another): every mesh triangle except a
#: band of two rings inside the face oval, which is where the colour is matched. No state.
FACE = Region(name="face", core=tuple(sorted(set(range(468)) - set(grow(rg.FACE_OVAL, 2)))),
              outer=tuple(range(468)), feature_scale=(), need_range=(), warp_limit=())
