"""Image pipeline: decode (draft mode, first frame, EXIF orientation), resize, encode, hash.

The public entry point is :func:`distdl.image.pipeline.process_image`;
:mod:`distdl.testing.image_samples` builds synthetic images for tests and the simulated fleet.
"""
