"""The torch backend: a torch.export program (.pt2) run by PyTorch eager, compiled or as a CUDA graph
(`runner`), the program reader that refuses pickled payloads (`programs`), and 2:4 conversion to
torch's semi-structured sparse kernels (`semi_structured`)."""
