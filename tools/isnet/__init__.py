"""IS-Net (Qin et al., "Highly Accurate Dichotomous Image Segmentation", ECCV 2022) as
libpetmatte's default model.

The weights come from the npm package @imgly/background-removal-data (its
"/models/medium" resource: an fp16 ONNX export of the general-use IS-Net weights,
MIT per the package's ThirdPartyLicenses.json and xuebinqin/DIS). The modules here:

  fetch       npm pack + pinned sha512, safe tar reading, chunk reassembly (sha256 each)
  onnx_torch  ONNX graph -> torch.nn.Module (fp32) for the op set the export uses
  onnx_numpy  an independent, straightforward numpy evaluation of the same graph, used
              only to check the conversion
  recipe      the pinned constants and the petmatte manifest

tools/setup_default_model.py drives them.
"""
