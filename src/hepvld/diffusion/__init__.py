"""hepvld.diffusion"""
