"""Everything ParetoMerge knows of Kubernetes, for the operator and the controller pod.

- :mod:`.constants`: the ParetoMergeRun API, labels, mounts, environment variable names;
- :mod:`.objects`: names, labels, owner references, security contexts and volumes of the
  objects made for a run;
- :mod:`.settings`: what a cluster owner sets once (images, run defaults);
- :mod:`.runs`: the run as the operator and the controller see it
  (:func:`~.runs.effective_run`) and :class:`~.runs.RunResource`, which reads it and
  writes its status;
- :mod:`.client`: every API call, under one retry and 404/409 policy;
- :mod:`.status`: the status written from the controller's state, its typed rows;
- :mod:`.crd`: the CustomResourceDefinition, generated from the run spec;
- :mod:`.executor`: tasks as Jobs, and :mod:`.runner`: the controller pod's main loop.

The operator imports only this package and :mod:`paretomerge.spec`. Every module but
:mod:`.runner` (the controller, BoTorch behind it) stays light: no torch, BoTorch,
mergekit or transformers. This ``__init__`` imports none of them, since
``paretomerge.spec`` reads the API constants from here.
"""
