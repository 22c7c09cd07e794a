"""The MediaPipe face mesh's topology: how many points, and which index is which part of the face.

One owner for the index sets that face alignment, head pose, the geometric AU backend and the landmark
metrics all read (a leaf module: numbers only, no imports). "Left"/"right" are the subject's: the
subject's right eye is on the image's left in a non-mirrored frame.
"""

from __future__ import annotations

N_LANDMARKS = 478  # 468 mesh points + 10 iris points (refine_landmarks=True)

# -- eyes
RIGHT_EYE = (33, 133)  # outer, inner corner
LEFT_EYE = (263, 362)
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER = 468, 473
#: (upper, lower) eyelid mid points of the right and the left eye
EYELID_PAIRS = ((159, 145), (386, 374))

# -- nose, chin
NOSE_TIP = 1
CHIN = 152

# -- mouth
MOUTH_CORNERS = (61, 291)  # outer corners (subject's right, left)
INNER_MOUTH_CORNERS = (78, 308)
OUTER_UPPER_LIP, OUTER_LOWER_LIP = 0, 17  # outer lip mid points
INNER_UPPER_LIP, INNER_LOWER_LIP = 13, 14  # inner lip mid points
MOUTH_POINTS = (61, 291, 0, 17, 13, 14)  # corners, outer upper/lower lip, inner upper/lower lip
#: MediaPipe FACEMESH_LIPS: the 20 outer and 20 inner lip contour points (40 in all)
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
LIPS = LIPS_OUTER + LIPS_INNER
#: vertically opposite (upper, lower) inner-lip points beside the mid pair, nearest first
LATERAL_INNER_LIP_PAIRS = ((82, 87), (312, 317), (81, 178), (311, 402))

# -- the head as a rigid body
#: symmetric (subject-left, subject-right) pairs that define the head's left-right axis
SYMMETRIC_PAIRS = ((263, 33), (362, 133), (454, 234), (356, 127), (389, 162), (327, 98), (278, 48))
#: points that move little with speech, blinks or brows: nose, eye corners, temples, upper forehead
RIGID_POINTS = (
    1, 2, 4, 5, 6, 168, 197, 195, 98, 327, 48, 278, 129, 358,
    33, 133, 362, 263,
    127, 356, 234, 454, 162, 389, 21, 251,
    10, 151, 9, 108, 337, 67, 297, 109, 338,
)  # fmt: skip
