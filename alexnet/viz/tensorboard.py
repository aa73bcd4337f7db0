"""The report's images in TensorBoard while a net trains: after every epoch, conv1's kernel grid
(Figure 3) and the top-5 panel on eight validation images (Figure 4 left). `alexnet train`
passes `epoch_images` to the loop as a hook; rank 0 alone calls it, so under §3.2 model
parallelism (each rank one column) it draws a whole-net copy (Trainer.whole_net), no collective."""
from __future__ import annotations

from .kernels import kernel_grid
from .panels import png_array, predictions_figure


def epoch_images(trainer) -> None:
    if trainer.log is None:
        return
    p, cfg = trainer.parts, trainer.cfg
    net = trainer.whole_net()
    if net is None:  # model parallelism, no checkpoint this epoch (train.ckpt_every_epochs): nothing gathered
        return
    trainer.log.image("figure3/conv1_kernels", trainer.step, kernel_grid(net))
    fig = predictions_figure(net, cfg, p.store, cfg.data.val_split, 8, p.device)
    trainer.log.image("figure4/top5", trainer.step, png_array(fig))
    trainer.model.train()
