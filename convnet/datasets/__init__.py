"""Datasets that ship with convnet or a package: no download at run time."""
