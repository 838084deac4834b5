"""hepvld.io"""
