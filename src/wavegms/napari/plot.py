"""The fine-tune dock's live plot: training loss and validation Dice per epoch, both axes
scaled to their data (a fixed 0-1 Dice axis hid a falling curve), the best epoch so far marked
and, once the run ends, the epoch kept with the validation size it was chosen on."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from qtpy.QtCore import QSize

FONT = 7  # points: the labels of both axes fit a dock 250 px wide


class LossPlot(FigureCanvasQTAgg):
    """Shown once a run has epochs to plot (an empty plot took a short dock's space)."""

    #: Small enough that, at 800 px with Segment docked above, the fine-tune dock shows its
    #: progress, status and plot together without scrolling.
    min_height = 120

    def __init__(self) -> None:
        # Fixed margins, not tight_layout: that measured every label on each draw (0.3-0.4 s
        # of the GUI thread per epoch); small type so that both axes read at a dock's width.
        figure = Figure(figsize=(2.6, 1.8))
        figure.subplots_adjust(left=0.2, right=0.8, bottom=0.24, top=0.95)
        super().__init__(figure)
        self.loss_axes = figure.add_subplot(1, 1, 1)
        self.dice_axes = self.loss_axes.twinx()
        self.setMinimumHeight(self.min_height)
        self.setMinimumWidth(150)
        self.clear()

    def sizeHint(self) -> QSize:
        # The figure's own size (400 px wide) would widen the dock; the plot follows the dock,
        # and takes a fifth of the window's height (more on a big screen, less on a small one).
        window = self.window()
        height = window.height() if window is not None and window is not self else 800
        return QSize(240, max(self.min_height, min(280, height // 5)))

    def minimumSizeHint(self) -> QSize:
        return QSize(150, self.min_height)

    def clear(self) -> None:
        self.chosen: int | None = None  # the epoch installed, once the run has ended
        self.val_images = 0
        self.epochs: list[int] = []
        self.losses: list[float] = []
        self.dice_epochs: list[int] = []  # the validated epochs (val_every: not every one)
        self.dices: list[float] = []
        self.setVisible(False)  # nothing to draw until the first epoch

    def add_epoch(self, epoch: int, loss: float, val_dice: float | None) -> None:
        """One epoch's loss, and its validation Dice when it was validated (else None)."""
        self.epochs.append(epoch)
        self.losses.append(loss)
        if val_dice is not None:
            self.dice_epochs.append(epoch)
            self.dices.append(val_dice)
        self.setVisible(True)
        self._draw()

    @property
    def best_epoch(self) -> int | None:
        """The epoch with the best validation Dice so far (the first of equals)."""
        if not self.dices:
            return None
        return self.dice_epochs[self.dices.index(max(self.dices))]

    def mark_chosen(self, epoch: int, val_images: int) -> None:
        self.chosen, self.val_images = epoch, val_images
        self._draw()

    def _draw(self) -> None:
        loss, dice = self.loss_axes, self.dice_axes
        loss.clear()
        dice.clear()
        loss.plot(self.epochs, self.losses, "o-", color="tab:blue", label="training loss")
        dice.plot(self.dice_epochs, self.dices, "s-", color="tab:orange", label="validation Dice")
        loss.set_xlabel("epoch", fontsize=FONT)
        loss.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True, min_n_ticks=1))
        for axes in (loss, dice):
            axes.tick_params(labelsize=FONT, pad=1)
            axes.yaxis.set_major_locator(MaxNLocator(nbins=4))
        loss.set_ylabel("loss", color="tab:blue", fontsize=FONT)
        dice.set_ylabel("val Dice", color="tab:orange", fontsize=FONT)
        dice.yaxis.set_label_position("right")
        dice.xaxis.set_visible(False)  # cleared, the twin drew its own x ticks over the loss's
        if self.dices:
            low, high = min(self.dices), max(self.dices)
            pad = max(0.02, 0.1 * (high - low))
            dice.set_ylim(max(0.0, low - pad), min(1.0, high + pad) + 1e-6)
        best = self.chosen if self.chosen is not None else self.best_epoch
        if best is not None and best in self.dice_epochs:
            value = self.dices[self.dice_epochs.index(best)]
            text = f"kept: epoch {best}" if self.chosen is not None else f"best: epoch {best}"
            if self.chosen is not None and self.val_images:
                text += f" ({self.val_images} val images)"
            dice.axvline(best, color="tab:green", linestyle="--", linewidth=1)
            dice.plot([best], [value], "*", color="tab:green", markersize=12)
            left = best > (self.epochs[0] + self.epochs[-1]) / 2  # text away from the edge
            dice.annotate(text, (best, value), textcoords="offset points",
                          xytext=(-8 if left else 8, -12), ha="right" if left else "left",
                          fontsize=FONT, color="tab:green")  # fmt: skip
        if self.epochs:
            loss.set_xlim(0.5, max(self.epochs) + 0.5)
        self.draw_idle()
