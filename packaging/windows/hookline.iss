; Inno Setup 6 script for Hookline on Windows: a per-user install (no administrator
; rights), a Start menu entry, optional start at login, and an uninstaller that keeps
; the user's data unless asked.
;
; NOT BUILT OR TESTED YET: written alongside the Linux packages; build it on Windows:
;   py packaging\build.py                       (makes dist\hookline\ with PyInstaller)
;   iscc /DAppVersion=0.1.0 packaging\windows\hookline.iss
; The version must be engine.__version__ (build.py prints it). The icon
; packaging\windows\hookline.ico (16..256 px, from resources\icons\hookline.svg) does not
; exist yet; the spec and this script use it when it does.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "Hookline"
#define AppExe "hookline.exe"
#define Bundle "..\..\dist\hookline"

[Setup]
; Keep this AppId for every release: it is how upgrades find the installed copy.
AppId={{6F0C1B7E-3C55-4C1E-9B7A-5C1D2E8A4F10}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=Hookline developers
DefaultDirName={localappdata}\Programs\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
OutputDir=..\..\dist
OutputBaseFilename=hookline-{#AppVersion}-setup
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
UninstallDisplayIcon={app}\{#AppExe}
; A running Hookline holds files open: ask it to close (Restart Manager).
CloseApplications=yes
#if FileExists("hookline.ico")
SetupIconFile=hookline.ico
#endif

[Tasks]
Name: "startatlogin"; Description: "Start Hookline when I sign in"; Flags: unchecked
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; Flags: unchecked

[Files]
Source: "{#Bundle}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{userprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{userdesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Registry]
; The same value the app's own "Start at login" setting writes (desktop/autostart.py:
; HKCU\...\Run, value "Hookline"), so the setting and the installer agree.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; \
  ValueName: "{#AppName}"; ValueData: """{app}\{#AppExe}"""; Tasks: startatlogin; \
  Flags: uninsdeletevalue

[Run]
; The self-test proves the copy works (a temporary folder; the user's data untouched).
Filename: "{app}\{#AppExe}"; Parameters: "--self-test"; Flags: runhidden waituntilterminated; \
  StatusMsg: "Checking the installation..."
Filename: "{app}\{#AppExe}"; Description: "Open Hookline"; Flags: nowait postinstall skipifsilent

[UninstallRun]
; Stop a running engine first (it would keep files open).
Filename: "{sys}\taskkill.exe"; Parameters: "/im {#AppExe} /f"; Flags: runhidden; \
  RunOnceId: "StopHookline"

[UninstallDelete]
Type: filesandordirs; Name: "{app}\_internal"

[Code]
// The data folder (automations, history, settings) is platformdirs' user_data_dir:
// %LOCALAPPDATA%\Hookline. Secrets live in Windows Credential Manager ("hookline").
// Both are kept unless the user asks for them to go.
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  DataDir: String;
begin
  if CurUninstallStep = usPostUninstall then
  begin
    RegDeleteValue(HKEY_CURRENT_USER, 'Software\Microsoft\Windows\CurrentVersion\Run',
      '{#AppName}');
    DataDir := ExpandConstant('{localappdata}\{#AppName}');
    if DirExists(DataDir) and not UninstallSilent then
      if MsgBox('Also delete your Hookline automations, their history and settings in '
                + DataDir + '?' + #13#10 + 'Choose No to keep them for a later install.',
                mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES then
        DelTree(DataDir, True, True, True);
  end;
end;
