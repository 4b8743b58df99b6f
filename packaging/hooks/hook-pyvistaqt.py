# pyvistaqt reaches PyVista's VTK namespace with importlib.import_module; its window icon is a data file.
from PyInstaller.utils.hooks import collect_data_files

datas = collect_data_files("pyvistaqt")
hiddenimports = ["pyvista._vtk"]
