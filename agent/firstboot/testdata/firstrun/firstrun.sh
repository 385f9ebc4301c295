#!/bin/sh

set +e

CURRENT_HOSTNAME=$(cat /etc/hostname | tr -d " \t\n\r")
if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then
   /usr/lib/raspberrypi-sys-mods/imager_custom set_hostname KXP2-CORO-001
else
   echo KXP2-CORO-001 >/etc/hostname
   sed -i "s/127.0.1.1.*$CURRENT_HOSTNAME/127.0.1.1\tKXP2-CORO-001/g" /etc/hosts
fi
# rpi-deploy: an image without a user 1000 (plain Debian) gets the profile's user
if ! getent passwd 1000 >/dev/null && [ ! -f /usr/lib/userconf-pi/userconf ]; then
   useradd -m -u 1000 -s /bin/bash 'kiosk'
   for g in users adm dialout audio netdev video plugdev cdrom games input gpio spi i2c render sudo; do getent group "$g" >/dev/null && usermod -a -G "$g" 'kiosk'; done
fi
FIRSTUSER=$(getent passwd 1000 | cut -d: -f1)
FIRSTUSERHOME=$(getent passwd 1000 | cut -d: -f6)
if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then
   /usr/lib/raspberrypi-sys-mods/imager_custom enable_ssh -k 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXO/TsO7aCl0VCp1X/G8E/9Rz00SKuaqfA3VbDpv7JL op@deploy'
else
   install -o "$FIRSTUSER" -m 700 -d "$FIRSTUSERHOME/.ssh"
cat > "$FIRSTUSERHOME/.ssh/authorized_keys" <<'EOF'
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXO/TsO7aCl0VCp1X/G8E/9Rz00SKuaqfA3VbDpv7JL op@deploy
EOF
   chown "$FIRSTUSER:$FIRSTUSER" "$FIRSTUSERHOME/.ssh/authorized_keys"
   chmod 600 "$FIRSTUSERHOME/.ssh/authorized_keys"
   echo 'PasswordAuthentication no' >>/etc/ssh/sshd_config
   systemctl enable ssh
fi
if [ -f /usr/lib/userconf-pi/userconf ]; then
   /usr/lib/userconf-pi/userconf 'kiosk' '$6$rpideploy$.bL8lFhHbjAix6mf/5rG1rFJ5Bt6wdfg3hh2wzFYYyWqxzMNdWdrLMKhUUeO16lVL5zdhhVffm3EGPeXXopEA0'
else
   echo "$FIRSTUSER:\$6\$rpideploy\$.bL8lFhHbjAix6mf/5rG1rFJ5Bt6wdfg3hh2wzFYYyWqxzMNdWdrLMKhUUeO16lVL5zdhhVffm3EGPeXXopEA0" | chpasswd -e
   if [ "$FIRSTUSER" != "kiosk" ]; then
      usermod -l "kiosk" "$FIRSTUSER"
      usermod -m -d "/home/kiosk" "kiosk"
      groupmod -n "kiosk" "$FIRSTUSER"
      if grep -q "^autologin-user=" /etc/lightdm/lightdm.conf ; then
         sed /etc/lightdm/lightdm.conf -i -e "s/^autologin-user=.*/autologin-user=kiosk/"
      fi
      if [ -f /etc/systemd/system/getty@tty1.service.d/autologin.conf ]; then
         sed /etc/systemd/system/getty@tty1.service.d/autologin.conf -i -e "s/$FIRSTUSER/kiosk/"
      fi
      if [ -f /etc/sudoers.d/010_pi-nopasswd ]; then
         sed -i "s/^$FIRSTUSER /kiosk /" /etc/sudoers.d/010_pi-nopasswd
      fi
   fi
fi
if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then
   /usr/lib/raspberrypi-sys-mods/imager_custom set_wlan  -h 'Venue Wi-Fi' 'c9e242c0945a1aff591be35bb33bda1f56b52d3389631df4a133da7f8c58651c' 'IT'
else
cat >/etc/wpa_supplicant/wpa_supplicant.conf <<'WPAEOF'
country=IT
ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev
ap_scan=1

update_config=1
network={
	scan_ssid=1
	ssid="Venue Wi-Fi"
	key_mgmt=WPA-PSK SAE
	psk=c9e242c0945a1aff591be35bb33bda1f56b52d3389631df4a133da7f8c58651c
	ieee80211w=1
}
WPAEOF
   chmod 600 /etc/wpa_supplicant/wpa_supplicant.conf
   rfkill unblock wifi
   for filename in /var/lib/systemd/rfkill/*:wlan ; do
       echo 0 > $filename
   done
fi
if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then
   /usr/lib/raspberrypi-sys-mods/imager_custom set_keymap 'it'
   /usr/lib/raspberrypi-sys-mods/imager_custom set_timezone 'Europe/Rome'
else
   rm -f /etc/localtime
   echo "Europe/Rome" >/etc/timezone
   dpkg-reconfigure -f noninteractive tzdata
cat >/etc/default/keyboard <<'KBEOF'
XKBMODEL="pc105"
XKBLAYOUT="it"
XKBVARIANT=""
XKBOPTIONS=""

KBEOF
   dpkg-reconfigure -f noninteractive keyboard-configuration
fi
# rpi-deploy: locale
if [ -f /etc/locale.gen ] && command -v locale-gen >/dev/null; then sed -i 's/^# *\(it_IT\.UTF-8 \)/\1/' /etc/locale.gen && locale-gen; fi; echo 'LANG=it_IT.UTF-8' >/etc/default/locale
# rpi-deploy: file 1
install -d -m 755 '/etc/kiosk'
base64 -d >'/etc/kiosk/board.json' <<'RPIDEPLOYEOF'
eyJob3N0bmFtZSI6ICJLWFAyLUNPUk8tMDAxIiwgInNlcmlhbCI6ICIxMDAwMDAwMGFiY2RlZjAx
In0K
RPIDEPLOYEOF
chmod 0640 '/etc/kiosk/board.json'
chown 'kiosk:kiosk' '/etc/kiosk/board.json'
# rpi-deploy: run-once command 1
sh -c 'echo first boot >>/var/log/kiosk-firstboot.log'
# rpi-deploy: run-once command 2
sh -c 'systemctl enable kiosk.service || true'
rm -f /boot/firmware/firstrun.sh
sed -i 's| systemd.run.*||g' /boot/firmware/cmdline.txt
exit 0
