"""Seeing what a CNN does: CAM, Grad-CAM(++), saliency, SmoothGrad, activations, filters, and the
figures of a training run, all drawn by matplotlib (headless, on the Agg canvas).

Every explanation function takes a tinygrad_edu model or its PyTorch twin and images
(N, C, H, W), and gives one map per image (for the predicted class unless `target` is given);
every `plot_*` function returns a matplotlib Figure, the same for report.html, TensorBoard
(`to_array`) and notebooks (`show`):

    from tinygrad_edu import viz
    viz.list_layers(model, (1, 28, 28))                 # names and output shapes
    maps = viz.grad_cam(model, x, layer="features.conv2")
    viz.save_figure(viz.plot_cam(x, maps), "gradcam.png")
    viz.show(viz.plot_learning_curves(history))         # in a notebook

`python -m experiments.visualize --help` does the same from the command line.
"""
from .activations import (
    Trace,
    VizError,
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
from .figures import (
    plot_confusion_matrix,
    plot_f_scores,
    plot_learning_curves,
    plot_lines,
    plot_topk,
)
from .filters import conv_weights, filter_grid, visualize_filters, weight_grid
from .graph import graph
from .images import (
    blues,
    colormap,
    heatmap_image,
    jet,
    make_grid,
    overlay,
    save_png,
    to_rgb,
    to_uint8,
)
from .live import LiveCurves
from .pictures import (
    activation_grid,
    plot_activations,
    plot_cam,
    plot_cam_comparison,
    plot_filters,
    plot_images,
    plot_weights,
)
from .plotting import new_figure, save_figure, show, to_array, to_png

__all__ = [
    "METHODS",
    "LiveCurves",
    "Trace",
    "VizError",
    "activation_grid",
    "blues",
    "cam",
    "colormap",
    "conv_layer_names",
    "conv_weights",
    "default_layer",
    "filter_grid",
    "grad_cam",
    "grad_cam_pp",
    "graph",
    "heat_images",
    "heatmap_image",
    "jet",
    "layer_activations",
    "list_layers",
    "make_grid",
    "new_figure",
    "normalize",
    "overlay",
    "overlay_maps",
    "plot_activations",
    "plot_cam",
    "plot_cam_comparison",
    "plot_confusion_matrix",
    "plot_f_scores",
    "plot_filters",
    "plot_images",
    "plot_learning_curves",
    "plot_lines",
    "plot_topk",
    "plot_weights",
    "predict",
    "saliency",
    "save_figure",
    "save_png",
    "show",
    "smooth_grad",
    "to_array",
    "to_png",
    "to_rgb",
    "to_uint8",
    "upsample",
    "visualize_filters",
    "weight_grid",
]
