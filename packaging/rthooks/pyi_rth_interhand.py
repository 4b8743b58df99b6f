# Runs in the bundle before the entry script.
import os

# pyvistaqt and pyqtgraph pick their Qt binding through qtpy / their own probing; the bundle has PySide6 only.
os.environ.setdefault("QT_API", "pyside6")
