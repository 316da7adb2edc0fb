"""Tests of altmarl.offpolicy (paper Appendix E, eq. 38), one module per package module."""
