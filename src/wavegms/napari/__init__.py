"""The napari plugin: a thin layer of widgets over ``wavegms``' library functions.

Nothing here is imported when napari starts except the manifest, and building a widget imports
no torch: the model code is imported by worker threads and the fine-tuning child process.
``runner`` runs every job (thread or process backend), ``feedback`` shows errors and progress,
``fields`` and ``layers`` hold what the forms share. The Qt-free parts (``settings``,
``jobs``, ``training_set``, ``finetune_job``) hold no widget code.
"""
