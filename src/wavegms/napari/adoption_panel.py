"""The choice of model after a fine-tune, shown in a dock: both models' figures on the
held-out pairs (``inference.adoption.Comparison``) and two buttons, "Use the new model" and
"Keep the current one". Hidden while there is nothing to decide."""

from __future__ import annotations

from collections.abc import Callable

from magicgui.widgets import Container, Label, PushButton

from wavegms.napari.feedback import guarded


class AdoptionPanel(Container):
    def __init__(self, adopt: Callable[[], None], decline: Callable[[], None], status) -> None:
        self.text = Label(value="")
        self.text.native.setWordWrap(True)
        self.adopt_button = PushButton(text="Use the new model")
        self.decline_button = PushButton(text="Keep the current one")
        buttons = Container(widgets=[self.adopt_button, self.decline_button], layout="horizontal")
        buttons.margins = (0, 0, 0, 0)
        super().__init__(widgets=[self.text, buttons], labels=False)
        self.margins = (0, 0, 0, 0)
        self.adopt_button.changed.connect(guarded(adopt, status))
        self.decline_button.changed.connect(guarded(decline, status))
        self.visible = False
        self.asking = False  # whether a question is open (``visible`` also needs a window)

    def ask(self, text: str, adopt_text: str = "Use the new model") -> None:
        """Show ``text`` and the two buttons."""
        self.text.value = text
        self.adopt_button.text = adopt_text
        self.visible = self.asking = True

    def close_question(self) -> None:
        self.visible = self.asking = False
