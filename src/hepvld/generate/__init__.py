"""hepvld.generate"""
