"""Wave-GMS: lightweight generative medical image segmentation.

The core (everything outside ``wavegms.napari``) imports without Qt or napari.
Heavy modules (torch) are imported by the submodules that need them, not here.
"""

__version__ = "0.1.0"
