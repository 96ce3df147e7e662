"""The napari plugin: a thin layer of widgets over ``wavegms``' library functions.

Nothing here is imported when napari starts except the manifest; each widget module imports
torch and the model code lazily, inside the functions and workers that need them. The
Qt-free parts (``settings``, ``jobs``, ``training_set``, ``finetune_job``) hold no widget code.
"""
