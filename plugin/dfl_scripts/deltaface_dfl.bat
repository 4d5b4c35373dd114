@echo off
rem deltaface for DeepFaceLab (Windows builds): repair the merged frames, then encode the result.
rem
rem Put this file in the DeepFaceLab folder, next to "8) merged to mp4.bat", and run it after
rem "7) merge ...". deltaface runs on its own Python, never DeepFaceLab's: set DELTAFACE to its
rem command when "deltaface" is not on PATH (e.g. set DELTAFACE=C:\deltaface\.venv\Scripts\deltaface.exe).
rem Extra arguments go to "deltaface dfl fix" (e.g. --bridge, --edits FILE).
rem Writes workspace\data_dst\merged_deltaface, workspace\data_dst\merged_mask_deltaface and
rem workspace\result_deltaface.mp4; DeepFaceLab's own folders and result.mp4 are only read.
call _internal\setenv.bat
if "%DELTAFACE%"=="" set DELTAFACE=deltaface
%DELTAFACE% dfl fix "%WORKSPACE%" --overwrite %*
if errorlevel 1 goto end
%DELTAFACE% dfl video "%WORKSPACE%" --overwrite
:end
pause
