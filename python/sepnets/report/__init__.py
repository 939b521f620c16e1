"""Result tables (:mod:`.parse_logs`, tool ``parse_logs``) and figures
(:mod:`.plot_logs`, tool ``plot_logs``) from the Caffe logs of experiments
(:mod:`.results`), one column / curve per step of the step table.
"""
