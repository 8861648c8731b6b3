"""Seeing what a CNN does: CAM, Grad-CAM(++), saliency, SmoothGrad, activations, filters.

Every function takes a tinygrad_edu model or its PyTorch twin and images (N, C, H, W), and gives
one map per image (for the predicted class unless `target` is given):

    from tinygrad_edu import viz
    viz.list_layers(model, (1, 28, 28))                 # names and output shapes
    maps = viz.grad_cam(model, x, layer="features.conv2")
    viz.save_png("gradcam.png", viz.make_grid(viz.overlay_maps(x, maps), scale=4))

`python -m experiments.visualize --help` does the same from the command line.
"""
from .activations import (
    Trace,
    VizError,
    activation_grid,
    conv_layer_names,
    default_layer,
    layer_activations,
    list_layers,
    predict,
)
from .cam import (
    METHODS,
    cam,
    grad_cam,
    grad_cam_pp,
    heat_images,
    normalize,
    overlay_maps,
    saliency,
    smooth_grad,
    upsample,
)
from .filters import conv_weights, filter_grid, visualize_filters, weight_grid
from .images import heatmap_image, jet, make_grid, overlay, save_png, to_rgb, to_uint8

__all__ = [
    "METHODS",
    "Trace",
    "VizError",
    "activation_grid",
    "cam",
    "conv_layer_names",
    "conv_weights",
    "default_layer",
    "filter_grid",
    "grad_cam",
    "grad_cam_pp",
    "heat_images",
    "heatmap_image",
    "jet",
    "layer_activations",
    "list_layers",
    "make_grid",
    "normalize",
    "overlay",
    "overlay_maps",
    "predict",
    "saliency",
    "save_png",
    "smooth_grad",
    "to_rgb",
    "to_uint8",
    "upsample",
    "visualize_filters",
    "weight_grid",
]
