/* 8 threads each create, write, read back and close files in DIR at once: prints the
 * errors seen (0 on a kernel filesystem). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <string.h>
#include <errno.h>
#include <stdlib.h>
static const char *dir; static int errors;
static void *work(void *arg){ long id=(long)arg; char p[256], buf[64];
 for(int i=0;i<200;i++){ snprintf(p,sizeof p,"%s/t%ld_%d",dir,id,i%5);
  int fd=open(p,O_RDWR|O_CREAT|O_TRUNC,0644); if(fd<0){__sync_fetch_and_add(&errors,1); fprintf(stderr,"open %s: %s\n",p,strerror(errno)); continue;}
  int n=snprintf(buf,sizeof buf,"thread %ld round %d\n",id,i);
  if(write(fd,buf,n)!=n){__sync_fetch_and_add(&errors,1); fprintf(stderr,"write: %s\n",strerror(errno));}
  char rb[64]={0}; if(pread(fd,rb,n,0)!=n||memcmp(rb,buf,n)){__sync_fetch_and_add(&errors,1); fprintf(stderr,"read back mismatch %s\n",p);}
  if(close(fd)<0){__sync_fetch_and_add(&errors,1); fprintf(stderr,"close: %s\n",strerror(errno));}
 } return 0;}
int main(int c,char**v){ dir=v[1]; pthread_t t[8]; for(long i=0;i<8;i++) pthread_create(&t[i],0,work,(void*)i); for(int i=0;i<8;i++) pthread_join(t[i],0); printf("errors %d\n",errors); return errors!=0;}
