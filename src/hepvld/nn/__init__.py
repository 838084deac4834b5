"""hepvld.nn"""
