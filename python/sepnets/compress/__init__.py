"""Compression of trained models: binarizing k x k filters into patterns
(:mod:`.binarize`, tool ``quant_pattern``), what a model costs to store and
the one parameter counter (:mod:`.sizes`, tool ``model_summary``), packed
``.sepnet`` files (:mod:`.pack_model`) and the pattern signs two models
disagree on (:mod:`.compare_patterns`).
"""
