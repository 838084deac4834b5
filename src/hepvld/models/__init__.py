"""hepvld.models"""
