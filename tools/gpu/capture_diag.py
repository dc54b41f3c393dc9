"""Why a TorchScript file cannot be captured as a CUDA graph: prints the TorchScript
traceback of the first operation refused during capture. Usage: capture_diag.py MODEL OPTIMIZE(0|1)"""
import sys, torch
m = torch.jit.load(sys.argv[1], map_location="cuda").eval()
x = torch.rand(1, 3, 1024, 1024, device="cuda")
torch._C._set_graph_executor_optimize(sys.argv[2] == "1")
with torch.no_grad():
    for _ in range(3):
        m(x)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(g, capture_error_mode="thread_local"):
            try:
                y = m(x)
            except Exception as e:
                msg = str(e)
                print("FIRST ERROR:", msg[:6000])
                raise
        print("capture ok")
    except Exception as e:
        print("capture failed:", str(e)[:300])
