"""hepvld.training"""
