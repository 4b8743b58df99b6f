# mediapipe 1.x (Tasks API): the native library mediapipe/tasks/c/libmediapipe.so is loaded with ctypes from
# importlib.resources.files("mediapipe.tasks.c"), which no import statement names; its small data files (metadata
# schemas, label maps) are read at run time. The hand model itself (.task) is ours, in interhand_assets/mediapipe.
from PyInstaller.utils.hooks import collect_data_files, collect_dynamic_libs

binaries = collect_dynamic_libs("mediapipe")
datas = collect_data_files("mediapipe")
hiddenimports = ["mediapipe.tasks.c"]
