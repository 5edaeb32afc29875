package icemerge
