# run as root: a tree with every kind of permission an unprivileged user meets
set -e
cd "$1"
chmod 755 .
mkdir pub priv sticky open grp
chmod 755 pub; chmod 700 priv; chmod 1777 sticky; chmod 777 open
chgrp 100 grp; chmod 2777 grp
echo secret > priv/s
echo data > pub/r600; chmod 600 pub/r600
echo ro > pub/r644; chmod 644 pub/r644
echo rw > pub/w666; chmod 666 pub/w666
echo x > sticky/rootfile; chmod 666 sticky/rootfile
mkdir pub/noread; touch pub/noread/inside; chmod 644 pub/noread/inside; chmod 311 pub/noread
# everything belongs to another user: the subject (root without capabilities) is "other"
chown -R 1000:1000 pub priv sticky open
chown 1000:100 grp
