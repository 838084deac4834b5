"""hepvld.features"""
