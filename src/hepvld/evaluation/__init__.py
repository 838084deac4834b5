"""hepvld.evaluation"""
