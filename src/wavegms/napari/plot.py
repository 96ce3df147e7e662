"""The fine-tune dock's live plot: training loss and validation Dice per epoch."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


class LossPlot(FigureCanvasQTAgg):
    def __init__(self) -> None:
        figure = Figure(figsize=(4, 2.6), tight_layout=True)
        super().__init__(figure)
        self.loss_axes = figure.add_subplot(1, 1, 1)
        self.dice_axes = self.loss_axes.twinx()
        self.setMinimumHeight(180)
        self.clear()

    def clear(self) -> None:
        self.epochs: list[int] = []
        self.losses: list[float] = []
        self.dices: list[float] = []
        self._draw()

    def add_epoch(self, epoch: int, loss: float, val_dice: float) -> None:
        self.epochs.append(epoch)
        self.losses.append(loss)
        self.dices.append(val_dice)
        self._draw()

    def _draw(self) -> None:
        loss, dice = self.loss_axes, self.dice_axes
        loss.clear()
        dice.clear()
        loss.plot(self.epochs, self.losses, "o-", color="tab:blue", label="training loss")
        dice.plot(self.epochs, self.dices, "s-", color="tab:orange", label="validation Dice")
        loss.set_xlabel("epoch")
        loss.xaxis.set_major_locator(MaxNLocator(integer=True))
        loss.set_ylabel("loss", color="tab:blue")
        dice.set_ylabel("val Dice", color="tab:orange")
        dice.yaxis.set_label_position("right")
        dice.set_ylim(0, 1)
        if self.epochs:
            loss.set_xlim(0.5, max(self.epochs) + 0.5)
        self.draw_idle()
