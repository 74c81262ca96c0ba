"""Faces in photos: find each damaged face, frame it as the model was trained, and put the fill back.

Pure NumPy, OpenCV and dlib on arrays, no HTTP and no device: `locate` finds faces
and their landmarks, `align` maps a face to the training crop's framing and back,
`plan` decides which faces a hole touches and which model suits each, `paste`
writes the faces' fills into the photo.
"""
