"""Support package for the Batch Normalization from Scratch course."""
