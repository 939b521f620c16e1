"""The paper's procedure as one resumable command (``tools/run_experiment.py``).

* :mod:`.steps`: THE table of steps (name, title, when enabled, how it
  runs), read by the runner, the result tables and the plots;
* :mod:`.runner`: the runner, a loop over that table (:mod:`.training`:
  ``caffe train`` steps; :mod:`.bipattern`: binarize and evaluate);
* :mod:`.config`: the typed run configuration and the schedule;
* :mod:`.nets`: the nets and solvers a run writes; :mod:`.catalog`: which
  experiments exist; :mod:`.data`: preparing their data;
* :mod:`.reuse`: taking another run's finished steps; :mod:`.resume`: the
  resume kit of an unfinished run;
* :mod:`.progress`: the progress display; :mod:`.run_experiment`: option
  types, experiment files (``experiments/*.toml``) and what the tool does
  with its parsed command line (the parser is ``tools/run_experiment.py``'s).
"""
