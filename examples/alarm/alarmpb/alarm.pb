
¡
alarm.protoferry.examples.alarm"Ö
Parcel;
source (2#.ferry.examples.alarm.Parcel.SourceRsourceJ
destination (2(.ferry.examples.alarm.Parcel.DestinationRdestination
type (	Rtype
content (Rcontentr
Source
name (	Rname
local_id (	RlocalId!
domain_agent (	RdomainAgent
domain (	Rdomain!
Destination
name (	Rname"f
AlarmStatus!
alarm_active (RalarmActive
time_utc (	RtimeUtc
date_utc (	RdateUtcB3Z1github.com/ferry-iot/ferry/examples/alarm/alarmpbbproto3