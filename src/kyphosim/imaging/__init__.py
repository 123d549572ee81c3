"""Imaging I/O: the :class:`Volume` type, readers/writers, vertebra label ids."""

from kyphosim.imaging.io import (centroids_to_world, check_ct, label_centroids_world, load_ct, load_image,
                                 load_labels, read_dicom_series, read_verse_centroids, save_volume,
                                 vertebra_ids_present)
from kyphosim.imaging.labels import (SUBREGION_IDS, parse_levels, vertebra_id, vertebra_name)
from kyphosim.imaging.volume import Volume, apply_affine, voxel_sizes

__all__ = [
    "Volume", "apply_affine", "voxel_sizes", "load_image", "load_ct", "load_labels", "save_volume",
    "check_ct", "read_dicom_series", "read_verse_centroids", "centroids_to_world",
    "label_centroids_world", "vertebra_ids_present", "vertebra_name", "vertebra_id", "parse_levels",
    "SUBREGION_IDS",
]
